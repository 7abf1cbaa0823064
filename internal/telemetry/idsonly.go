package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// idsOnly is the tracer provider of a process that exports no spans. Its
// spans record nothing (no attributes, events, timestamps or span processor
// work on a request's path), but each one has the span context the SDK would
// give it: a new span id, and the parent's trace id, flags and trace state —
// or, for a root, a new trace id, sampled, as the SDK's default sampler
// decides. So trace ids still reach log lines, events and the next hop's
// traceparent exactly as with the SDK, and a function that does export
// continues the trace.
type idsOnly struct{ embedded.TracerProvider }

// Tracer implements trace.TracerProvider.
func (idsOnly) Tracer(string, ...trace.TracerOption) trace.Tracer { return idsTracer{} }

type idsTracer struct{ embedded.Tracer }

// Start implements trace.Tracer.
func (idsTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanContextFromContext(ctx)
	var cfg trace.SpanContextConfig
	if parent.IsValid() && !newRoot(opts) {
		cfg = trace.SpanContextConfig{TraceID: parent.TraceID(), TraceFlags: parent.TraceFlags(), TraceState: parent.TraceState()}
	} else {
		cfg = trace.SpanContextConfig{TraceID: newTraceID(), TraceFlags: trace.FlagsSampled}
	}
	cfg.SpanID = newSpanID()
	s := &idsSpan{sc: trace.NewSpanContext(cfg)}
	return trace.ContextWithSpan(ctx, s), s
}

// newRoot reports whether opts ask for a new root (trace.WithNewRoot).
func newRoot(opts []trace.SpanStartOption) bool {
	if len(opts) == 0 {
		return false
	}
	c := trace.NewSpanStartConfig(opts...)
	return c.NewRoot()
}

// idsSpan is a span of idsOnly: noop.Span's methods, with its own span
// context, and idsOnly as its provider (instrumentation such as otelhttp's
// transport starts its client spans from the provider of the span in the
// request's context).
type idsSpan struct {
	noop.Span
	sc trace.SpanContext
}

// SpanContext implements trace.Span.
func (s *idsSpan) SpanContext() trace.SpanContext { return s.sc }

// TracerProvider implements trace.Span.
func (s *idsSpan) TracerProvider() trace.TracerProvider { return idsOnly{} }

// newTraceID is a random, valid (non-zero) trace id.
func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

// newSpanID is a random, valid (non-zero) span id.
func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
