package telemetry

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The hand-written encoding decodes, with opentelemetry-proto's generated
// types, to exactly what the conversion through those types made: spans of
// two resources and three scopes, attributes of every kind (empty strings,
// zero numbers, false, empty and nested slices, maps, bytes), events, links,
// dropped counts, trace state, remote parents and every status.
func TestOTLPWireMatchesGeneratedTypes(t *testing.T) {
	every := []attribute.KeyValue{
		attribute.String("s", "x"), attribute.String("empty", ""), attribute.Int("i", -7), attribute.Int("zero", 0),
		attribute.Bool("t", true), attribute.Bool("f", false), attribute.Float64("fl", 1.5), attribute.Float64("fz", 0),
		attribute.StringSlice("ss", []string{"a", ""}), attribute.Int64Slice("is", []int64{1, -2, 0}),
		attribute.BoolSlice("bs", []bool{true, false}), attribute.Float64Slice("fs", []float64{0.25, 0}),
		attribute.StringSlice("none", nil), attribute.ByteSlice("bytes", []byte{0, 1, 2}), attribute.ByteSlice("nobytes", nil),
		attribute.Slice("mixed", attribute.StringValue("a"), attribute.Int64Value(3), attribute.SliceValue(attribute.BoolValue(true))),
		attribute.Map("map", attribute.String("k", "v"), attribute.Map("inner", attribute.Int("n", 1))), attribute.Map("emptymap"),
		{Key: "unset"},
	}
	var spans []sdktrace.ReadOnlySpan
	for i, res := range []*resource.Resource{
		resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0", attribute.String("service.name", "svc")),
		resource.Empty(),
	} {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(rec),
			sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeCountLimit: 30, EventCountLimit: 1, LinkCountLimit: 1,
				AttributePerEventCountLimit: 1, AttributePerLinkCountLimit: 1, AttributeValueLengthLimit: -1}))
		ts, _ := trace.ParseTraceState("vendor=value,other=x")
		remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2},
			TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
		start := time.Unix(1_700_000_000, int64(i))
		tracers := []trace.Tracer{tp.Tracer("scope-a"),
			tp.Tracer("scope-b", trace.WithInstrumentationVersion("1.2"), trace.WithSchemaURL("https://example.com/s"),
				trace.WithInstrumentationAttributes(attribute.String("lib", "x")))}
		ctx := trace.ContextWithRemoteSpanContext(t.Context(), remote)
		ctx, parent := tracers[0].Start(ctx, "parent", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
			trace.WithLinks(trace.Link{SpanContext: remote, Attributes: []attribute.KeyValue{attribute.String("why", "retry"), attribute.Int("n", 2)}},
				trace.Link{SpanContext: trace.SpanContext{}}))
		parent.SetAttributes(every...)
		parent.AddEvent("ev", trace.WithAttributes(attribute.Int("n", 3), attribute.Int("m", 4)), trace.WithTimestamp(start.Add(time.Millisecond)))
		parent.AddEvent("dropped")
		parent.SetStatus(codes.Error, "broken")
		_, child := tracers[1].Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient))
		child.SetStatus(codes.Ok, "")
		child.End()
		_, plain := tracers[0].Start(t.Context(), "")
		plain.End(trace.WithTimestamp(time.Time{}))
		parent.End(trace.WithTimestamp(start.Add(time.Second)))
		spans = append(spans, rec.Ended()...)
	}
	if len(spans) != 6 {
		t.Fatalf("%d spans recorded, want 6", len(spans))
	}
	got := &tracepb.TracesData{}
	if err := proto.Unmarshal(appendTracesData(nil, spans), got); err != nil {
		t.Fatal(err)
	}
	want := &tracepb.TracesData{ResourceSpans: refResourceSpans(spans)}
	if !proto.Equal(want, got) {
		t.Errorf("decoded:\n%v\nwant:\n%v", got, want)
	}
	if wantBytes, _ := proto.Marshal(want); len(wantBytes) != len(appendTracesData(nil, spans)) {
		t.Errorf("%d bytes, the generated types' encoding has %d", len(appendTracesData(nil, spans)), len(wantBytes))
	}
}
