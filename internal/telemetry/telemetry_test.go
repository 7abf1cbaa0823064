package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/telemetry"
	"github.com/shopfaas/shop/internal/telemetry/otlpsink"
)

func TestLoggerAddsRequestContext(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	ctx = telemetry.WithCallID(ctx, "call-42")

	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, "get-me", slog.LevelInfo).With("k", "v").WithGroup("g")
	log.InfoContext(ctx, "hello", "x", 1)
	log.DebugContext(ctx, "filtered out")
	log.Info("no context")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %s", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	got := map[string]any{"function": first["function"], "k": first["k"]}
	want := map[string]any{"function": "get-me", "k": "v"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	g, _ := first["g"].(map[string]any)
	wantG := map[string]any{"x": float64(1), "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(), "call_id": "call-42"}
	if diff := cmp.Diff(wantG, g); diff != "" {
		t.Errorf("request attributes (-want +got):\n%s", diff)
	}
	for _, k := range []string{"trace_id", "span_id", "call_id"} {
		if _, ok := second[k]; ok {
			t.Errorf("a line without context carries %s: %s", k, lines[1])
		}
		if g2, ok := second["g"].(map[string]any); ok {
			if _, ok := g2[k]; ok {
				t.Errorf("a line without context carries %s: %s", k, lines[1])
			}
		}
	}
}

func TestCallID(t *testing.T) {
	ctx := context.Background()
	if telemetry.WithCallID(ctx, "") != ctx || telemetry.CallID(ctx) != "" {
		t.Error("an empty call id changed the context")
	}
	if got := telemetry.CallID(telemetry.WithCallID(ctx, "c1")); got != "c1" {
		t.Errorf("CallID = %q", got)
	}
}

func TestSetupWithoutExporter(t *testing.T) {
	shutdown, err := telemetry.Setup(context.Background(), "svc", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestSpansWithoutExporterCarryIDsButRecordNothing: without an exporter,
// Setup's spans record nothing (no attributes, events or span processing on
// the request path) but carry the ids the SDK would give them, so trace ids
// still reach logs and the next hop's traceparent.
func TestSpansWithoutExporterCarryIDsButRecordNothing(t *testing.T) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	shutdown, err := telemetry.Setup(t.Context(), "svc", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	tr := otel.Tracer("test")

	ctx, root := tr.Start(context.Background(), "root")
	rsc := root.SpanContext()
	if root.IsRecording() {
		t.Error("a span records although nothing exports it")
	}
	if !rsc.IsValid() || !rsc.IsSampled() {
		t.Errorf("root span context %v: want valid and sampled, as the SDK's default sampler", rsc)
	}
	ctx, child := tr.Start(ctx, "child")
	csc := child.SpanContext()
	if csc.TraceID() != rsc.TraceID() || csc.SpanID() == rsc.SpanID() || !csc.SpanID().IsValid() || !csc.IsSampled() {
		t.Errorf("child %v of root %v: want the root's trace id and a new span id", csc, rsc)
	}
	// Instrumentation (otelhttp's transport) starts client spans from the
	// provider of the span in the context: they get new span ids too.
	_, client := trace.SpanFromContext(ctx).TracerProvider().Tracer("client").Start(ctx, "call")
	if client.SpanContext().TraceID() != rsc.TraceID() || client.SpanContext().SpanID() == csc.SpanID() {
		t.Errorf("client span %v of %v: want the same trace and a new span id", client.SpanContext(), csc)
	}
	if _, fresh := tr.Start(ctx, "new root", trace.WithNewRoot()); fresh.SpanContext().TraceID() == rsc.TraceID() {
		t.Error("WithNewRoot kept the parent's trace id")
	}

	h := http.Header{}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
	if want := "00-" + rsc.TraceID().String() + "-" + csc.SpanID().String() + "-01"; h.Get("traceparent") != want {
		t.Errorf("traceparent %q, want %q", h.Get("traceparent"), want)
	}

	// A remote parent that was not sampled stays not sampled, as with the
	// SDK's parent-based sampler.
	h.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
	remote := otel.GetTextMapPropagator().Extract(context.Background(), propagation.HeaderCarrier(h))
	_, sp := tr.Start(remote, "server")
	if sc := sp.SpanContext(); sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sc.IsSampled() || sc.SpanID().String() == "b7ad6b7169203331" {
		t.Errorf("span of an unsampled remote parent: %v", sc)
	}

	var buf bytes.Buffer
	telemetry.NewLogger(&buf, "fn", slog.LevelInfo).InfoContext(ctx, "hello")
	if !strings.Contains(buf.String(), `"trace_id":"`+rsc.TraceID().String()+`"`) {
		t.Errorf("log line without the trace id: %s", buf.String())
	}

}

func TestProviderExportsToTheEndpointOfGetenv(t *testing.T) {
	sink := otlpsink.Start(t)
	for _, tt := range []struct {
		name string
		env  map[string]string
	}{
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": sink.URL() + "/"}},
		{"traces endpoint wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.URL() + "/v1/traces"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := telemetry.NewProvider(t.Context(), "svc-"+tt.name, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("test").Start(t.Context(), "op")
			span.End()
			if err := tp.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, sp := range sink.Spans() {
				found = found || (sp.Service == "svc-"+tt.name && sp.Name == "op" && sp.TraceID == span.SpanContext().TraceID().String())
			}
			if !found {
				t.Fatalf("span not received: %v", sink.Spans())
			}
		})
	}
}

// On the faasd-CE stack one process (a bundle) serves several functions: a
// line logged for one of them, by its context (WithFunction) or its logger
// (ForMember), names it as the line's one function, at the top level even
// inside a group, and the process as its bundle; a context naming the
// process itself changes nothing.
func TestALineNamesTheMemberItWasLoggedFor(t *testing.T) {
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, "inventory", slog.LevelInfo).With("k", "v").WithGroup("g")
	ctx := context.Background()
	log.InfoContext(telemetry.WithFunction(ctx, "get-stock"), "by context", "x", 1)
	telemetry.ForMember(log, "set-stock").Info("by logger")
	telemetry.ForMember(log, "set-stock").InfoContext(telemetry.WithFunction(ctx, "get-stock"), "context first")
	log.InfoContext(telemetry.WithFunction(ctx, "inventory"), "the process")
	log.Info("no member")

	type line struct{ Msg, Function, Bundle, K string }
	var got []line
	for l := range strings.Lines(buf.String()) {
		if n := strings.Count(l, `"function":`); n != 1 {
			t.Errorf("%d function fields in %s", n, l)
		}
		var v line
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	want := []line{
		{"by context", "get-stock", "inventory", "v"},
		{"by logger", "set-stock", "inventory", "v"},
		{"context first", "get-stock", "inventory", "v"},
		{"the process", "inventory", "", "v"},
		{"no member", "inventory", "", "v"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}

	buf.Reset()
	telemetry.ForMember(slog.New(slog.NewJSONHandler(&buf, nil)), "get-stock").Info("elsewhere")
	if !strings.Contains(buf.String(), `"member":"get-stock"`) {
		t.Errorf("another logger's member line %s: want a member attribute", buf.String())
	}

	// slog.Handler: "If the name is empty, WithGroup returns the receiver."
	if h := log.Handler(); h.WithGroup("") != h {
		t.Error(`WithGroup("") returned another handler, want the receiver`)
	}
}
