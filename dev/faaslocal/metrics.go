package faaslocal

import (
	"cmp"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Prometheus discovery of the local stack (docs/observability.md): the
// gateway listener serves
//
//	GET /metrics                  the edge's Kong metrics (kong_http_requests_total),
//	                              as Kong's status listener serves them
//	GET /system/metrics-targets   every metrics endpoint of the runtime, in
//	                              Prometheus' HTTP service discovery format
//
// so a Prometheus started by hand or by a test scrapes the same jobs as
// monitoring/prometheus.yml does in production (job functions with a
// function label, job connectors with instance <service>:<port>, job kong),
// and monitoring/rules and the dashboard's queries apply unchanged.

// targetGroup is one entry of Prometheus' HTTP service discovery answer.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// connectorMetrics remembers where each connector serves /metrics, read
// from the line telemetry.ServeMetrics logs when it listens ("metrics
// listening", with the address and the connector's service name).
type connectorMetrics struct {
	mu    sync.Mutex
	addrs map[string]metricsEndpoint // by connector name
}

type metricsEndpoint struct{ service, addr string }

// observe reads one output line of connector name.
func (c *connectorMetrics) observe(name, line string) {
	if !strings.Contains(line, `"metrics listening"`) {
		return
	}
	var rec struct {
		Msg      string `json:"msg"`
		Addr     string `json:"addr"`
		Function string `json:"function"`
	}
	if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "metrics listening" || rec.Addr == "" {
		return
	}
	if CheckLoopback(rec.Addr) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.addrs == nil {
		c.addrs = map[string]metricsEndpoint{}
	}
	c.addrs[name] = metricsEndpoint{service: cmp.Or(rec.Function, name), addr: rec.Addr}
}

func (c *connectorMetrics) list() []metricsEndpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]metricsEndpoint, 0, len(c.addrs))
	for _, e := range c.addrs {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b metricsEndpoint) int { return strings.Compare(a.service, b.service) })
	return out
}

// MetricsTargets lists every metrics endpoint of the runtime as Prometheus'
// HTTP service discovery does: each deployed function through the gateway
// (/function/<name>/_/metrics, job functions), each connector that serves
// metrics (job connectors, instance <service>:<port> as in compose) and the
// edge (job kong).
func (rt *Runtime) MetricsTargets() []targetGroup {
	gw := rt.gateway.addr()
	var out []targetGroup
	for _, fn := range rt.functions.List() {
		out = append(out, targetGroup{Targets: []string{gw}, Labels: map[string]string{
			"job": "functions", "function": fn.Name, "__metrics_path__": "/function/" + fn.Name + "/_/metrics",
		}})
	}
	slices.SortFunc(out, func(a, b targetGroup) int { return strings.Compare(a.Labels["function"], b.Labels["function"]) })
	for _, c := range rt.connectorMetrics.list() {
		_, port, _ := net.SplitHostPort(c.addr)
		out = append(out, targetGroup{Targets: []string{c.addr}, Labels: map[string]string{
			"job": "connectors", "instance": c.service + ":" + port,
		}})
	}
	if rt.edge != nil {
		out = append(out, targetGroup{Targets: []string{gw}, Labels: map[string]string{"job": "kong", "__metrics_path__": "/metrics"}})
	}
	return out
}

// metricsRoutes serves GET /metrics and GET /system/metrics-targets in
// front of the gateway API, and passes every other request to it untouched
// (no ServeMux: its path cleaning would redirect paths the API answers).
func (rt *Runtime) metricsRoutes(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			api.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case "/metrics":
			if rt.edge == nil {
				http.Error(w, "the edge is disabled", http.StatusNotFound)
				return
			}
			rt.edge.Metrics().ServeHTTP(w, r)
		case "/system/metrics-targets":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(rt.MetricsTargets())
		default:
			api.ServeHTTP(w, r)
		}
	})
}
