// Package telemetry sets up tracing and structured logs for a process. Traces
// are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; otherwise spans are still created
// and propagated, so trace ids appear in logs and events, but they record
// nothing and nothing is sent.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Setup installs the global tracer provider and W3C propagators for
// service: NewProvider's when an endpoint is configured; without one, a
// provider whose spans carry ids (trace id, span id, sampled flag, as the
// SDK's would) but record nothing, since nothing would read what they
// record — every request of every function starts a server span, every call
// and query a client span. The returned shutdown flushes pending spans;
// defer it in run.
func Setup(ctx context.Context, service string, getenv func(string) string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if Endpoint(getenv) == "" {
		otel.SetTracerProvider(idsOnly{})
		return func(context.Context) error { return nil }, nil
	}
	tp, err := NewProvider(ctx, service, getenv)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// Endpoint is the OTLP/HTTP traces URL of getenv's configuration:
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL), else
// OTEL_EXPORTER_OTLP_ENDPOINT (the base URL) + /v1/traces, else empty.
func Endpoint(getenv func(string) string) string {
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); endpoint == "" && base != "" {
		endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
	}
	return endpoint
}

// NewProvider returns a tracer provider whose spans name service. It exports
// in batches over OTLP/HTTP to getenv's OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// (the full URL) or OTEL_EXPORTER_OTLP_ENDPOINT (the base URL, to which
// /v1/traces is added); without either it exports nothing. The exporter's
// other settings (headers, timeout, compression) are the standard
// OTEL_EXPORTER_OTLP_* variables, also read from getenv (otlp.go). Shut it
// down to flush.
func NewProvider(ctx context.Context, service string, getenv func(string) string) (*sdktrace.TracerProvider, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if endpoint := Endpoint(getenv); endpoint != "" {
		exp, err := newOTLPExporter(endpoint, getenv)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

type callIDKey struct{}

// WithCallID stores the OpenFaaS call id (X-Call-Id) for log lines.
func WithCallID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, callIDKey{}, id)
}

// CallID returns the call id stored by WithCallID.
func CallID(ctx context.Context) string {
	id, _ := ctx.Value(callIDKey{}).(string)
	return id
}

// NewLogger returns a JSON logger to w that tags every line with the
// function name and, for *Context calls, the trace id, span id and call id.
func NewLogger(w io.Writer, function string, level slog.Leveler) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(ctxHandler{h}).With("function", function)
}

type ctxHandler struct{ slog.Handler }

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if id := CallID(ctx); id != "" {
		r.AddAttrs(slog.String("call_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h ctxHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ctxHandler{h.Handler.WithAttrs(attrs)}
}
func (h ctxHandler) WithGroup(name string) slog.Handler { return ctxHandler{h.Handler.WithGroup(name)} }
