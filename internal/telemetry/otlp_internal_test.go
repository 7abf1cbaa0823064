package telemetry

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/shopfaas/shop/internal/telemetry/otlpsink"
)

// collector decodes what the exporter sends with the collector's own
// message type, ExportTraceServiceRequest, so a wire difference shows.
type collector struct {
	srv      *httptest.Server
	failures atomic.Int32 // answer 503 this many times first
	mu       sync.Mutex
	reqs     []*coltrace.ExportTraceServiceRequest
	headers  []http.Header
}

func startCollector(t *testing.T) *collector {
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.failures.Add(-1) >= 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		req, err := otlpsink.Decode(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, req)
		c.headers = append(c.headers, r.Header.Clone())
		c.mu.Unlock()
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// spans are the received spans by name, with their resource's service.name.
func (c *collector) spans() (map[string]*tracepb.Span, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	spans, services := map[string]*tracepb.Span{}, map[string]string{}
	for _, req := range c.reqs {
		for _, rs := range req.GetResourceSpans() {
			var service string
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					spans[sp.GetName()] = sp
					services[sp.GetName()] = service + "/" + ss.GetScope().GetName()
				}
			}
		}
	}
	return spans, services
}

func attrMap(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

// TestOTLPExporterKeepsEverySpanField exports a parent with attributes of
// every kind, an event, a link and an error status, and its child with an Ok
// status, and checks each field as the collector decodes it.
func TestOTLPExporterKeepsEverySpanField(t *testing.T) {
	c := startCollector(t)
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":    c.srv.URL,
		"OTEL_EXPORTER_OTLP_HEADERS":     "x-api-key=a%20b, x-tenant=shop",
		"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
	}
	tp, err := NewProvider(t.Context(), "svc", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	tracer := tp.Tracer("scope-a")
	linked := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2},
		TraceFlags: trace.FlagsSampled, Remote: true})
	start := time.Unix(1_700_000_000, 5)
	ctx, parent := tracer.Start(t.Context(), "parent", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("why", "retry")}}))
	parent.SetAttributes(attribute.String("s", "x"), attribute.Int("i", -7), attribute.Bool("b", true),
		attribute.Float64("f", 1.5), attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1, 2}))
	parent.AddEvent("ev", trace.WithAttributes(attribute.Int("n", 3)), trace.WithTimestamp(start.Add(time.Millisecond)))
	parent.SetStatus(codes.Error, "broken")
	_, child := tracer.Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient))
	child.SetStatus(codes.Ok, "")
	child.End()
	parent.End(trace.WithTimestamp(start.Add(time.Second)))
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	spans, scopes := c.spans()
	p, ch := spans["parent"], spans["child"]
	if p == nil || ch == nil {
		t.Fatalf("spans received: %v", spans)
	}
	psc := parent.SpanContext()
	if hex.EncodeToString(p.GetTraceId()) != psc.TraceID().String() || hex.EncodeToString(p.GetSpanId()) != psc.SpanID().String() ||
		len(p.GetParentSpanId()) != 0 {
		t.Errorf("parent ids: trace %x span %x parent %x, want %s %s none", p.GetTraceId(), p.GetSpanId(), p.GetParentSpanId(),
			psc.TraceID(), psc.SpanID())
	}
	if hex.EncodeToString(ch.GetTraceId()) != psc.TraceID().String() || hex.EncodeToString(ch.GetParentSpanId()) != psc.SpanID().String() {
		t.Errorf("child: trace %x parent %x, want %s %s", ch.GetTraceId(), ch.GetParentSpanId(), psc.TraceID(), psc.SpanID())
	}
	if scopes["parent"] != "svc/scope-a" {
		t.Errorf("service/scope %q, want svc/scope-a", scopes["parent"])
	}
	if p.GetKind() != tracepb.Span_SPAN_KIND_SERVER || ch.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("kinds %v %v, want server, client", p.GetKind(), ch.GetKind())
	}
	if p.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || p.GetStatus().GetMessage() != "broken" ||
		ch.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_OK {
		t.Errorf("status %v / %v, want error \"broken\" / ok", p.GetStatus(), ch.GetStatus())
	}
	if p.GetStartTimeUnixNano() != uint64(start.UnixNano()) || p.GetEndTimeUnixNano() != uint64(start.Add(time.Second).UnixNano()) {
		t.Errorf("times %d..%d, want %d..%d", p.GetStartTimeUnixNano(), p.GetEndTimeUnixNano(), start.UnixNano(),
			start.Add(time.Second).UnixNano())
	}
	if p.GetFlags()&0xff != uint32(trace.FlagsSampled) || p.GetFlags()&uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK) == 0 {
		t.Errorf("flags %#x, want sampled and has-is-remote", p.GetFlags())
	}
	a := attrMap(p.GetAttributes())
	if a["s"].GetStringValue() != "x" || a["i"].GetIntValue() != -7 || !a["b"].GetBoolValue() || a["f"].GetDoubleValue() != 1.5 {
		t.Errorf("scalar attributes %v", a)
	}
	if ss := a["ss"].GetArrayValue().GetValues(); len(ss) != 2 || ss[1].GetStringValue() != "b" {
		t.Errorf("string slice attribute %v", a["ss"])
	}
	if is := a["is"].GetArrayValue().GetValues(); len(is) != 2 || is[1].GetIntValue() != 2 {
		t.Errorf("int slice attribute %v", a["is"])
	}
	if ev := p.GetEvents(); len(ev) != 1 || ev[0].GetName() != "ev" || attrMap(ev[0].GetAttributes())["n"].GetIntValue() != 3 ||
		ev[0].GetTimeUnixNano() != uint64(start.Add(time.Millisecond).UnixNano()) {
		t.Errorf("events %v", ev)
	}
	if l := p.GetLinks(); len(l) != 1 || hex.EncodeToString(l[0].GetSpanId()) != linked.SpanID().String() ||
		hex.EncodeToString(l[0].GetTraceId()) != linked.TraceID().String() ||
		attrMap(l[0].GetAttributes())["why"].GetStringValue() != "retry" ||
		l[0].GetFlags()&uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK) == 0 {
		t.Errorf("links %v", l)
	}
	c.mu.Lock()
	h := c.headers[0]
	c.mu.Unlock()
	if h.Get("X-Api-Key") != "a b" || h.Get("X-Tenant") != "shop" || h.Get("Content-Type") != "application/x-protobuf" ||
		h.Get("Content-Encoding") != "gzip" {
		t.Errorf("request headers %v", h)
	}
}

// TestOTLPExporterRetriesAnUnavailableCollector: two 503 answers, then the
// spans arrive; a 400 is not retried.
func TestOTLPExporterRetriesAnUnavailableCollector(t *testing.T) {
	c := startCollector(t)
	c.failures.Store(2)
	e, err := newOTLPExporter(c.srv.URL+"/v1/traces", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	tp, err := NewProvider(t.Context(), "svc", func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" {
			return e.endpoint
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(t.Context(), "op")
	span.End()
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if spans, _ := c.spans(); spans["op"] == nil {
		t.Fatalf("span not received after two 503s: %v", spans)
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer bad.Close()
	e, err = newOTLPExporter(bad.URL, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if retry, err := e.post(t.Context(), nil); err == nil || retry != 0 {
		t.Errorf("400: retry %v err %v, want an error not retried", retry, err)
	}
}

func TestOTLPExporterSettings(t *testing.T) {
	for _, tt := range []struct {
		endpoint string
		env      map[string]string
	}{
		{"127.0.0.1:4318", nil},
		{"ftp://x/v1/traces", nil},
		{"http://x/v1/traces", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}},
		{"http://x/v1/traces", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}},
		{"http://x/v1/traces", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}},
	} {
		if _, err := newOTLPExporter(tt.endpoint, func(k string) string { return tt.env[k] }); err == nil {
			t.Errorf("%s %v: no error", tt.endpoint, tt.env)
		}
	}
	e, err := newOTLPExporter("https://x/v1/traces", func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "100", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500"}[k]
	})
	if err != nil || e.timeout != 2500*time.Millisecond {
		t.Fatalf("timeout %v, %v: want the traces-specific 2.5s", e, err)
	}
}

// TestOTLPExporterNeverLogsTheEndpointsCredentials: an endpoint with userinfo
// (user:password@, which Go's client sends as basic auth) appears in the
// exporter's errors — which the SDK logs — as redacted@host: a refused
// endpoint, one url.Parse cannot read, a collector's error answer, a
// collector that cannot be reached. Until 2026-12-03 they named it verbatim.
func TestOTLPExporterNeverLogsTheEndpointsCredentials(t *testing.T) {
	const user, password = "alice", "s3cret-pw"
	leaks := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		if strings.Contains(err.Error(), user) || strings.Contains(err.Error(), password) {
			t.Errorf("%s: the error names the endpoint's credentials: %v", what, err)
		}
		if !strings.Contains(err.Error(), "redacted@") {
			t.Errorf("%s: %v, want the endpoint with redacted@ in place of its userinfo", what, err)
		}
	}
	none := func(string) string { return "" }
	for _, endpoint := range []string{
		"ftp://" + user + ":" + password + "@collector/v1/traces",
		"http://" + user + ":" + password + "@collector:port/v1/traces", // url.Parse: invalid port
		user + ":" + password + "@collector:4318",
	} {
		_, err := newOTLPExporter(endpoint, none)
		leaks("refused endpoint "+endpoint, err)
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer bad.Close()
	withUser := strings.Replace(bad.URL, "://", "://"+user+":"+password+"@", 1) + "/v1/traces"
	e, err := newOTLPExporter(withUser, none)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.post(t.Context(), nil)
	leaks("collector answering 400", err)

	bad.Close() // nothing listens there any more
	_, err = e.post(t.Context(), nil)
	leaks("unreachable collector", err)

	if got, want := redacted("https://"+user+":"+password+"@otlp.example:4318/v1/traces?x=a@b"),
		"https://redacted@otlp.example:4318/v1/traces?x=a@b"; got != want {
		t.Errorf("redacted = %q, want %q", got, want)
	}
	if got := redacted("http://collector:4318/v1/traces"); got != "http://collector:4318/v1/traces" {
		t.Errorf("redacted changed an endpoint without userinfo: %q", got)
	}
}

// TestOTLPExporterFollowsNoRedirect: a collector (or a proxy before it)
// answering 307 or 302 to another server gets its answer taken as a failed
// export, not followed, as the connector's and the scheduler's clients
// follow none either. Until 2026-12-07 the exporter followed them: a 307
// re-sent the spans there with the OTEL_EXPORTER_OTLP_HEADERS credential
// (net/http strips only Authorization and Cookie, across hosts only), and a
// 302 became a GET without a body whose 200 read as a successful export.
func TestOTLPExporterFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		t.Errorf("redirected %s reached another server with X-Api-Key %q", r.Method, r.Header.Get("X-Api-Key"))
	}))
	defer other.Close()
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusFound} {
		moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/v1/traces", status)
		}))
		e, err := newOTLPExporter(moved.URL+"/v1/traces", func(k string) string {
			return map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "X-Api-Key=collector-secret"}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		retry, err := e.post(t.Context(), []byte("spans"))
		if err == nil || retry != 0 || !strings.Contains(err.Error(), strconv.Itoa(status)) {
			t.Errorf("%d: retry %v, err %v: want a failed export naming %d, not retried", status, retry, err, status)
		}
		moved.Close()
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("%d export(s) followed a redirect to another server", n)
	}
}
