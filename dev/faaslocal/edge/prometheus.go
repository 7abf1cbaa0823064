package edge

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// PrometheusConfig is the config of Kong's prometheus plugin. Locally
// status_code_metrics is honoured (kong_http_requests_total, served by
// Edge.Metrics); the other flags are checked and have no effect.
type PrometheusConfig struct {
	// PerConsumer labels metrics with the consumer.
	PerConsumer bool `json:"per_consumer"`
	// StatusCodeMetrics counts responses by status.
	StatusCodeMetrics bool `json:"status_code_metrics"`
	// LatencyMetrics measures request, upstream and Kong latencies.
	LatencyMetrics bool `json:"latency_metrics"`
	// BandwidthMetrics counts bytes in and out.
	BandwidthMetrics bool `json:"bandwidth_metrics"`
	// UpstreamHealthMetrics exports upstream target health.
	UpstreamHealthMetrics bool `json:"upstream_health_metrics"`
	// AIMetrics exports Kong's AI plugin metrics.
	AIMetrics bool `json:"ai_metrics"`
}

func (c *PrometheusConfig) setDefaults() {}

// Validate accepts every combination of the flags.
func (c *PrometheusConfig) Validate() error { return nil }

// edgeMetrics is the registry of the edge's Kong metrics.
type edgeMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
}

// newEdgeMetrics registers the edge's Kong metrics on reg.
func newEdgeMetrics(reg *prometheus.Registry) *edgeMetrics {
	m := &edgeMetrics{
		reg: reg,
		// Kong 3.x's kong_http_requests_total; locally without the source
		// label (whether Kong or the upstream answered).
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kong_http_requests_total",
			Help: "HTTP status codes per consumer/service/route in Kong",
		}, []string{"service", "route", "code", "workspace", "consumer"}),
	}
	m.reg.MustRegister(m.requests)
	return m
}

// Metrics serves the edge's metrics in the Prometheus text format, as Kong's
// status listener serves /metrics: kong_http_requests_total by service,
// route and code when the prometheus plugin has status_code_metrics, and
// whatever else is registered on Options.Registry.
func (e *Edge) Metrics() http.Handler {
	return promhttp.HandlerFor(e.metrics.reg, promhttp.HandlerOpts{Registry: e.metrics.reg})
}

// promPlugin is Kong's prometheus plugin. Its work is in Kong's log phase,
// after the response whichever plugin answered, so it counts from outside
// the whole chain (logPhase).
type promPlugin struct {
	cfg      PrometheusConfig
	service  string
	route    string
	requests *prometheus.CounterVec
	// byCode caches the scope's counter per status code (100–599): the
	// vector's look-up hashes and checks five label values per request.
	byCode [600]atomic.Pointer[prometheus.Counter]
}

// counter is the scope's kong_http_requests_total child for status.
func (p *promPlugin) counter(status int) prometheus.Counter {
	if status < 100 || status >= len(p.byCode) {
		return p.requests.WithLabelValues(p.service, p.route, strconv.Itoa(status), "default", "")
	}
	if c := p.byCode[status].Load(); c != nil {
		return *c
	}
	c := p.requests.WithLabelValues(p.service, p.route, strconv.Itoa(status), "default", "")
	p.byCode[status].Store(&c)
	return c
}

func newPrometheus(c PrometheusConfig, s *scope) (plugin, error) {
	p := &promPlugin{cfg: c}
	if s.metrics != nil {
		p.requests = s.metrics.requests
	}
	// The scope of a route is "<service>:<route>", of the global chain "global".
	if svc, rt, ok := strings.Cut(s.name, ":"); ok {
		p.service, p.route = svc, rt
	}
	return p, nil
}

func (p *promPlugin) wrap(next http.Handler) http.Handler { return next }

// log counts every response of the chain it wraps.
func (p *promPlugin) log(next http.Handler) http.Handler {
	if !p.cfg.StatusCodeMetrics || p.requests == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		// Deferred: an answer the proxy cut (http.ErrAbortHandler, the
		// upstream broke off after its headers) is counted too, with the
		// status it had, as Kong's log phase counts it.
		defer func() { p.counter(sw.status).Inc() }()
		next.ServeHTTP(sw, r)
	})
}
