package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/telemetry/otlpsink"
)

// traceCheckout are the functions of one checkout and the work it triggers;
// expire-reservations (which asks order-statuses to sell the order's hold)
// and recover-orders run on the scheduler's clock.
var traceCheckout = []string{"get-product", "set-stock", "reserve-stock", "commit-stock", "release-stock", "charge-payment",
	"refund-payment", "create-order", "get-order-timeline", "update-product-stats", "notify-user", "index-product",
	"expire-reservations", "order-statuses", "recover-orders"}

// traceHandlers are the event functions a confirmed checkout reaches:
// order.placed.v1 (update-product-stats, notify-user) and, when it sells a
// product out, stock.changed.v1 (index-product): the test's order takes the
// product's last unit.
var traceHandlers = []string{"update-product-stats", "notify-user", "index-product"}

// TestOneCheckoutIsOneTrace exports every process's spans to a real OTLP/HTTP
// receiver in the test process (otlpsink) and checks that one checkout through
// the edge is ONE trace in which every span's parent is a span of the same
// trace: the edge's server span its root (a trace of the shop's own, linked
// to the client's span, not continuing it), create-order under the
// edge, reserve-stock and charge-payment under create-order's
// HTTP client spans, database client spans under each function, the outbox
// relay's publish span under the span that wrote the event, the connector's
// delivery spans under the publish span and each event handler under a
// delivery span — with the semantic conventions' attributes. The order's
// timeline names the same trace, and the scheduler's runs are traces of their
// own. A broken link anywhere (a hop that drops traceparent, a span started
// from a fresh context) fails it.
func TestOneCheckoutIsOneTrace(t *testing.T) {
	sink := otlpsink.Start(t)
	_, env := eventEnv(t)
	env["OTEL_BSP_SCHEDULE_DELAY"] = "200" // export within 0.2 s of a span's end
	s := startTracedShop(t, traceCheckout, []string{"outbox-relay", "rabbitmq", "scheduler"}, env, sink.URL())
	t.Cleanup(func() {
		if t.Failed() {
			for _, fn := range append(traceCheckout, "outbox-relay", "rabbitmq", "scheduler") {
				t.Logf("last log lines of %s:\n%s", fn, lastLogs(s.Runtime, fn, 15))
			}
		}
	})
	p := s.product(t, "TR-MUG-1", 990, 1) // the order sells it out
	customer := s.token(t, auth.RoleCustomer)

	// The client sends a trace context of its own; the shop's trace starts
	// at the edge and links to it.
	tb := make([]byte, 16)
	_, _ = rand.Read(tb)
	clientTrace, clientSpan := hex.EncodeToString(tb), "00f067aa0ba902b7"
	body, _ := json.Marshal(orderBody(p.ID, 1))
	req, _ := http.NewRequest(http.MethodPost, s.EdgeURL+"/api/v1/orders", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+customer)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create order: %d %s", res.StatusCode, raw)
	}
	var order struct{ ID string }
	if err := json.Unmarshal(raw, &order); err != nil {
		t.Fatal(err)
	}

	// Wait until the edge's span (exported by the runtime's own batcher,
	// every 5 s), which names the checkout's trace, and each handler's server
	// span have arrived.
	var traceID string
	spans, ok := sink.Wait(30*time.Second, func(all []otlpsink.Span) bool {
		edge, ok := linkedTo(all, clientTrace, clientSpan)
		if !ok {
			return false
		}
		traceID = edge.TraceID
		tr := newTree(all, traceID)
		for _, fn := range traceHandlers {
			if len(tr.servers(fn)) == 0 {
				return false
			}
		}
		return true
	})
	tr := newTree(spans, traceID)
	if !ok {
		t.Fatalf("the edge's and the handlers' spans did not arrive within 30s; trace so far:\n%s", tr)
	}
	time.Sleep(time.Second) // the stragglers of the last batch
	tr = newTree(sink.Spans(), traceID)

	// One trace of the shop's own: the edge's span is its only root, linked
	// to the client's span, and every other span's parent is in it.
	if traceID == clientTrace || len(sink.Trace(clientTrace)) != 0 {
		t.Errorf("the checkout continued the client's trace %s", clientTrace)
	}
	for _, sp := range tr.spans {
		if sp.ParentID == "" {
			if sp.Service != "kong" || sp.Kind != "server" {
				t.Errorf("only the edge's server span may be the trace's root, not %v", sp)
			}
			continue
		}
		if _, ok := tr.byID[sp.ParentID]; !ok {
			t.Errorf("span %v has a parent outside the trace (a broken link)", sp)
		}
	}
	edge := tr.one(t, "kong", "server")
	if edge.ParentID != "" || edge.Attrs["http.route"] != "/api/v1/orders" ||
		!slices.Contains(edge.Links, otlpsink.Link{TraceID: clientTrace, SpanID: clientSpan}) {
		t.Errorf("edge span %v (route %q, links %v) is not the root for /api/v1/orders linked to the client's span", edge, edge.Attrs["http.route"], edge.Links)
	}
	create := tr.one(t, "create-order", "server")
	if create.ParentID != edge.SpanID {
		t.Errorf("create-order's span %v is not a child of the edge's %v", create, edge)
	}
	checkHTTPServer(t, create, "POST", "201")

	// The saga's steps: a server span under a create-order HTTP client span.
	for _, fn := range []string{"reserve-stock", "charge-payment"} {
		srv := tr.one(t, fn, "server")
		parent := tr.byID[srv.ParentID]
		if parent.Service != "create-order" || parent.Kind != "client" || !tr.under(parent, create) {
			t.Errorf("%s's span %v is not under a client span of create-order (parent %v)", fn, srv, parent)
		}
		if parent.Attrs["http.request.method"] != "POST" || parent.Attrs["server.address"] == "" || parent.Attrs["http.response.status_code"] == "" {
			t.Errorf("HTTP client span %v lacks the semantic conventions' attributes: %v", parent, parent.Attrs)
		}
		checkHTTPServer(t, srv, "POST", "")
		checkDB(t, tr, srv)
	}
	checkDB(t, tr, create)

	// The event path: publish (relay) → deliver (connector) → handler.
	publishes := tr.find("outbox-relay", "producer")
	if len(publishes) == 0 {
		t.Fatalf("no publish span of the relay in the trace:\n%s", tr)
	}
	// Each event's publish span descends from the span of the function that
	// wrote it (the traceparent its envelope carries from events.New): the
	// order's events from create-order, the stock's from reserve-stock, the
	// product's (its stock ran out) from a catalog handler of that event.
	writers := map[string][]otlpsink.Span{
		"order.":   {create},
		"stock.":   {tr.one(t, "reserve-stock", "server")},
		"product.": append(tr.servers("index-product"), tr.servers("update-product-stats")...),
	}
	for _, pub := range publishes {
		key := pub.Attrs["messaging.rabbitmq.destination.routing_key"]
		var candidates []otlpsink.Span
		for prefix, spans := range writers {
			if strings.HasPrefix(key, prefix) {
				candidates = spans
			}
		}
		if !slices.ContainsFunc(candidates, func(w otlpsink.Span) bool { return tr.under(pub, w) }) {
			t.Errorf("publish span %v of %q does not descend from the span that wrote it (one of %v)", pub, key, candidates)
		}
		checkAttrs(t, pub, map[string]string{"messaging.system": "rabbitmq", "messaging.operation.type": "send"},
			"messaging.destination.name", "messaging.rabbitmq.destination.routing_key", "messaging.message.id")
	}
	for _, fn := range traceHandlers {
		for _, srv := range tr.servers(fn) {
			deliver := tr.byID[srv.ParentID]
			if deliver.Service != "rabbitmq-connector" || deliver.Kind != "consumer" {
				t.Errorf("%s's span %v is not a child of the connector's delivery span (parent %v)", fn, srv, deliver)
				continue
			}
			if pub := tr.byID[deliver.ParentID]; pub.Service != "outbox-relay" || pub.Kind != "producer" {
				t.Errorf("delivery span %v is not a child of the relay's publish span (parent %v)", deliver, pub)
			}
			checkAttrs(t, deliver, map[string]string{"messaging.system": "rabbitmq", "messaging.operation.type": "process"},
				"messaging.message.id", "messaging.rabbitmq.destination.routing_key")
		}
	}
	checkDB(t, tr, tr.servers("update-product-stats")[0])

	// The timeline leads to the same trace (the shop's, not the client's).
	for _, st := range timeline(t, s.EdgeURL, order.ID, customer) {
		if st.TraceID != traceID {
			t.Errorf("timeline step %s names trace %q, want the checkout's %s (the client's was %s)", st.Step, st.TraceID, traceID, clientTrace)
		}
	}

	// The scheduler's runs (every minute) are traces of their own: a root
	// producer span with the invoked function's server span under it.
	_, ok = sink.Wait(75*time.Second, func(all []otlpsink.Span) bool { return scheduledRun(all, traceID) != "" })
	if !ok {
		t.Fatal("no scheduled run traced within 75s")
	}
	t.Logf("scheduled run: %s", scheduledRun(sink.Spans(), traceID))
}

// TestTheShopsTraceStartsAtTheEdge: whatever trace context a client sends —
// sampled, or -00 asking the shop to record nothing — the request through the
// local edge is a trace of the shop's own: a new trace id, the edge's server
// span its root with a link to the client's span, and the function's server
// span under it, sampled and exported (the shop's sampler decides, not the
// client's flags).
func TestTheShopsTraceStartsAtTheEdge(t *testing.T) {
	sink := otlpsink.Start(t)
	s := startTracedShop(t, []string{"get-product"}, nil, map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "200"}, sink.URL())
	for _, flags := range []string{"00", "01"} {
		t.Run("client flags "+flags, func(t *testing.T) {
			tb := make([]byte, 16)
			_, _ = rand.Read(tb)
			clientTrace, clientSpan := hex.EncodeToString(tb), hex.EncodeToString(tb[:8])
			req, _ := http.NewRequest(http.MethodGet, s.EdgeURL+"/api/v1/products/"+uuid.NewString(), nil)
			req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-"+flags)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("GET an unknown product: %d, want get-product's 404", res.StatusCode)
			}
			var edge otlpsink.Span
			spans, ok := sink.Wait(30*time.Second, func(all []otlpsink.Span) bool {
				var linked bool
				edge, linked = linkedTo(all, clientTrace, clientSpan)
				return linked && len(newTree(all, edge.TraceID).servers("get-product")) > 0
			})
			if !ok {
				t.Fatalf("within 30s no edge span linked to the client's span %s with get-product's server span in its trace; spans:\n%s",
					clientSpan, &tree{spans: spans})
			}
			tr := newTree(spans, edge.TraceID)
			if edge.TraceID == clientTrace || edge.ParentID != "" {
				t.Errorf("edge span %v continues the client's trace %s; want the root of a new trace", edge, clientTrace)
			}
			if got := sink.Trace(clientTrace); len(got) != 0 {
				t.Errorf("%d spans in the client's trace %s, want none: %v", len(got), clientTrace, got)
			}
			fn := tr.one(t, "get-product", "server")
			if fn.ParentID != edge.SpanID {
				t.Errorf("get-product's span %v is not a child of the edge's %v", fn, edge)
			}
		})
	}
}

// linkedTo returns the edge's server span that links to the client's span
// (the root of the trace the shop started for the client's request).
func linkedTo(all []otlpsink.Span, clientTrace, clientSpan string) (otlpsink.Span, bool) {
	for _, sp := range all {
		if sp.Service == "kong" && sp.Kind == "server" && slices.Contains(sp.Links, otlpsink.Link{TraceID: clientTrace, SpanID: clientSpan}) {
			return sp, true
		}
	}
	return otlpsink.Span{}, false
}

// scheduledRun describes a scheduler run whose trace is its own (a root
// producer span of the scheduler, not in the checkout's trace) with a
// function's server span as its child, or "" when none has arrived.
func scheduledRun(all []otlpsink.Span, checkout string) string {
	for _, root := range all {
		if root.Service != "scheduler" || root.Kind != "producer" || root.ParentID != "" || root.TraceID == checkout {
			continue
		}
		for _, sp := range all {
			if sp.ParentID == root.SpanID && sp.Kind == "server" && (sp.Service == "expire-reservations" || sp.Service == "recover-orders") {
				return fmt.Sprintf("%v → %v", root, sp)
			}
		}
	}
	return ""
}

// lastLogs returns the last n log lines of a function or connector.
func lastLogs(rt *runtimetest.Runtime, name string, n int) string {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/system/logs?name=%s&follow=false&tail=%d", rt.GatewayURL, name, n), nil)
	if err != nil {
		return err.Error()
	}
	rt.Authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func doJSON(t *testing.T, req *http.Request, out any) int {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
	}
	return res.StatusCode
}

// checkHTTPServer checks a server span's HTTP semantic conventions (status ""
// accepts any).
func checkHTTPServer(t *testing.T, sp otlpsink.Span, method, status string) {
	t.Helper()
	want := map[string]string{"http.request.method": method}
	if status != "" {
		want["http.response.status_code"] = status
	}
	checkAttrs(t, sp, want, "http.response.status_code", "url.path")
}

// checkDB checks that a function's span has PostgreSQL client spans under
// it, described by the database semantic conventions.
func checkDB(t *testing.T, tr *tree, fn otlpsink.Span) {
	t.Helper()
	var n int
	for _, sp := range tr.spans {
		if sp.Service != fn.Service || sp.Kind != "client" || sp.Attrs["db.system.name"] != "postgresql" || !tr.under(sp, fn) {
			continue
		}
		n++
		checkAttrs(t, sp, nil, "db.operation.name", "db.namespace", "db.query.text")
		if want := sp.Attrs["db.operation.name"] + " " + sp.Attrs["db.namespace"]; sp.Name != want {
			t.Errorf("database span named %q, want %q", sp.Name, want)
		}
	}
	if n == 0 {
		t.Errorf("no PostgreSQL client span under %v", fn)
	}
}

// checkAttrs checks exact values and the presence of others.
func checkAttrs(t *testing.T, sp otlpsink.Span, want map[string]string, present ...string) {
	t.Helper()
	for k, v := range want {
		if sp.Attrs[k] != v {
			t.Errorf("%v: %s = %q, want %q", sp, k, sp.Attrs[k], v)
		}
	}
	for _, k := range present {
		if sp.Attrs[k] == "" {
			t.Errorf("%v: no %s (attributes %v)", sp, k, sp.Attrs)
		}
	}
}

// tree is one trace's spans, by id.
type tree struct {
	spans []otlpsink.Span
	byID  map[string]otlpsink.Span
}

func newTree(all []otlpsink.Span, traceID string) *tree {
	tr := &tree{byID: map[string]otlpsink.Span{}}
	for _, sp := range all {
		if sp.TraceID == traceID {
			tr.spans = append(tr.spans, sp)
			tr.byID[sp.SpanID] = sp
		}
	}
	return tr
}

// find returns the spans of service of kind.
func (tr *tree) find(service, kind string) []otlpsink.Span {
	var out []otlpsink.Span
	for _, sp := range tr.spans {
		if sp.Service == service && sp.Kind == kind {
			out = append(out, sp)
		}
	}
	return out
}

// servers are a function's server spans.
func (tr *tree) servers(fn string) []otlpsink.Span { return tr.find(fn, "server") }

// one returns the single span of service of kind, failing otherwise.
func (tr *tree) one(t *testing.T, service, kind string) otlpsink.Span {
	t.Helper()
	found := tr.find(service, kind)
	if len(found) != 1 {
		t.Fatalf("%d %s spans of %s, want 1; trace:\n%s", len(found), kind, service, tr)
	}
	return found[0]
}

// under reports whether sp descends from ancestor.
func (tr *tree) under(sp, ancestor otlpsink.Span) bool {
	for seen := 0; sp.ParentID != "" && seen < len(tr.spans); seen++ {
		parent, ok := tr.byID[sp.ParentID]
		if !ok {
			return false
		}
		if parent.SpanID == ancestor.SpanID {
			return true
		}
		sp = parent
	}
	return false
}

func (tr *tree) String() string {
	var b strings.Builder
	for _, sp := range tr.spans {
		fmt.Fprintln(&b, " ", sp)
	}
	return b.String()
}

// timelineStep is an entry of an order's timeline, as the tests read it.
type timelineStep struct {
	Step    string `json:"step"`
	TraceID string `json:"trace_id"`
}

// timeline reads the order's timeline through the edge as token's user; the
// test fails unless it answers 200 with at least one entry.
func timeline(t *testing.T, edgeURL, orderID, token string) []timelineStep {
	t.Helper()
	var tl struct {
		Steps []timelineStep `json:"steps"`
	}
	if code := call(t, http.MethodGet, edgeURL+"/api/v1/orders/"+orderID+"/timeline", token, nil, &tl); code != http.StatusOK || len(tl.Steps) == 0 {
		t.Fatalf("timeline: %d %+v", code, tl)
	}
	return tl.Steps
}
