package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
)

// jaegerServices are the services one confirmed checkout's trace must show
// in Jaeger: the edge, the saga, the relay, the connector and the handlers.
var jaegerServices = []string{"kong", "create-order", "reserve-stock", "charge-payment",
	"outbox-relay", "rabbitmq-connector", "update-product-stats", "notify-user", "index-product"}

// TestCheckoutTraceInJaeger is opt-in: JAEGER_BIN names a Jaeger v2 binary
// (make jaeger-build builds .local/bin/jaeger; building it takes too long
// for make test). It runs Jaeger with monitoring/jaeger/local.yaml, every
// listener moved to a free loopback port, points the local stack at it and
// checks that one checkout through the edge is ONE trace in Jaeger's query
// API whose spans come from every hop (jaegerServices), whose parents are
// all in the trace, the edge's span its root with a FOLLOWS_FROM reference
// (Jaeger's form of a span link) to the client's span, with each saga
// function's server span and each handler's server span under a delivery
// span of the connector.
func TestCheckoutTraceInJaeger(t *testing.T) {
	bin := os.Getenv("JAEGER_BIN")
	if bin == "" {
		t.Skip("set JAEGER_BIN to a Jaeger v2 binary (make jaeger-build builds .local/bin/jaeger) to run it")
	}
	root := runtimetest.Root(t)
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(root, bin)
	}
	addrs := map[string]string{}
	for _, name := range []string{"JAEGER_OTLP_HTTP_ADDR", "JAEGER_OTLP_GRPC_ADDR", "JAEGER_QUERY_ADDR",
		"JAEGER_QUERY_GRPC_ADDR", "JAEGER_HEALTH_ADDR", "JAEGER_METRICS_PORT"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[name] = ln.Addr().String()
		ln.Close()
	}
	_, port, _ := net.SplitHostPort(addrs["JAEGER_METRICS_PORT"])
	addrs["JAEGER_METRICS_PORT"] = port
	var jaegerEnv []string
	for k, v := range addrs {
		jaegerEnv = append(jaegerEnv, k+"="+v)
	}
	_, exited := startProcess(t, jaegerEnv, bin, "--config", filepath.Join(root, "monitoring", "jaeger", "local.yaml"))
	query := "http://" + addrs["JAEGER_QUERY_ADDR"]
	client := &http.Client{Timeout: 10 * time.Second}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(300 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatal("jaeger exited (its output follows)")
		default:
		}
		if res, err := client.Get(query + "/api/services"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("jaeger's query API did not answer within 1m")
		}
	}

	_, env := eventEnv(t)
	env["OTEL_BSP_SCHEDULE_DELAY"] = "200"
	s := startTracedShop(t, traceCheckout, []string{"outbox-relay", "rabbitmq"}, env, "http://"+addrs["JAEGER_OTLP_HTTP_ADDR"])
	p := s.product(t, "JG-MUG-1", 990, 1) // the order sells it out: index-product gets stock.changed.v1
	tb := make([]byte, 16)
	_, _ = rand.Read(tb)
	clientTrace, clientSpan := hex.EncodeToString(tb), "00f067aa0ba902b7"
	body, _ := json.Marshal(orderBody(p.ID, 1))
	customer := s.token(t, auth.RoleCustomer)
	req, _ := http.NewRequest(http.MethodPost, s.EdgeURL+"/api/v1/orders", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+customer)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	var order struct{ ID string }
	if code := doJSON(t, req, &order); code != http.StatusCreated {
		t.Fatalf("create order: %d", code)
	}
	// The checkout's trace is the shop's (the edge starts it): the order's
	// timeline names it.
	traceID := timeline(t, s.EdgeURL, order.ID, customer)[0].TraceID
	if traceID == clientTrace {
		t.Fatalf("the checkout continued the client's trace %s", clientTrace)
	}

	type span struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		ProcessID     string `json:"processID"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	}
	// parent is the span's CHILD_OF reference ("" for a root).
	parent := func(sp span) string {
		for _, r := range sp.References {
			if r.RefType == "CHILD_OF" {
				return r.SpanID
			}
		}
		return ""
	}
	kind := func(sp span) string {
		for _, tag := range sp.Tags {
			if tag.Key == "span.kind" {
				return fmt.Sprint(tag.Value)
			}
		}
		return ""
	}
	type jaegerTrace struct {
		TraceID   string                                  `json:"traceID"`
		Spans     []span                                  `json:"spans"`
		Processes map[string]struct{ ServiceName string } `json:"processes"`
	}
	var traces []jaegerTrace
	var services []string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		traces, services = nil, nil
		if res, err := client.Get(query + "/api/traces/" + traceID); err == nil {
			var got struct{ Data []jaegerTrace }
			_ = json.NewDecoder(res.Body).Decode(&got)
			res.Body.Close()
			traces = got.Data
		}
		seen := map[string]bool{}
		for _, tr := range traces {
			for _, sp := range tr.Spans {
				seen[tr.Processes[sp.ProcessID].ServiceName] = true
			}
		}
		for svc := range seen {
			services = append(services, svc)
		}
		slices.Sort(services)
		complete := true
		for _, want := range jaegerServices {
			complete = complete && seen[want]
		}
		if complete {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 1m Jaeger's trace %s shows services %v, want all of %v", traceID, services, jaegerServices)
		}
	}
	time.Sleep(2 * time.Second) // the stragglers of the last batches
	if res, err := client.Get(query + "/api/traces/" + traceID); err == nil {
		var got struct{ Data []jaegerTrace }
		_ = json.NewDecoder(res.Body).Decode(&got)
		res.Body.Close()
		traces = got.Data
	}
	if len(traces) != 1 {
		t.Fatalf("Jaeger answered %d traces for %s, want 1", len(traces), traceID)
	}
	tr := traces[0]
	ids := map[string]bool{}
	for _, sp := range tr.Spans {
		ids[sp.SpanID] = true
	}
	for _, sp := range tr.Spans {
		svc := tr.Processes[sp.ProcessID].ServiceName
		switch p := parent(sp); {
		case p == "":
			linked := false
			for _, r := range sp.References {
				linked = linked || (r.RefType == "FOLLOWS_FROM" && r.TraceID == clientTrace && r.SpanID == clientSpan)
			}
			if svc != "kong" || !linked {
				t.Errorf("span %s of %s is a root; only the edge's may be, linked to the client's span (references %+v)", sp.SpanID, svc, sp.References)
			}
		case !ids[p]:
			t.Errorf("span %s of %s has a parent outside the trace (a broken link)", sp.SpanID, svc)
		}
	}
	// Each function's server span, and each handler's under a delivery span
	// of the connector (not only spans continued from the event's envelope).
	byID := map[string]span{}
	for _, sp := range tr.Spans {
		byID[sp.SpanID] = sp
	}
	for _, svc := range []string{"kong", "create-order", "reserve-stock", "charge-payment"} {
		found := false
		for _, sp := range tr.Spans {
			found = found || (tr.Processes[sp.ProcessID].ServiceName == svc && kind(sp) == "server")
		}
		if !found {
			t.Errorf("no server span of %s in the trace", svc)
		}
	}
	for _, fn := range traceHandlers {
		found := false
		for _, sp := range tr.Spans {
			if tr.Processes[sp.ProcessID].ServiceName != fn || kind(sp) != "server" || parent(sp) == "" {
				continue
			}
			up := byID[parent(sp)]
			found = found || (tr.Processes[up.ProcessID].ServiceName == "rabbitmq-connector" && kind(up) == "consumer")
		}
		if !found {
			t.Errorf("no server span of %s under a delivery span of the connector in the trace", fn)
		}
	}
	t.Logf("Jaeger: trace %s, %d spans from %d services %v", traceID, len(tr.Spans), len(services), services)
}
