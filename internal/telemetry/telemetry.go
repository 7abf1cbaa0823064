// Package telemetry sets up tracing and structured logs for a process. Traces
// are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; otherwise spans are still created
// and propagated, so trace ids appear in logs and events, but they record
// nothing and nothing is sent.
package telemetry

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

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
// defer it in run. opts are NewProvider's.
func Setup(ctx context.Context, service string, getenv func(string) string, opts ...Option) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if Endpoint(getenv) == "" {
		otel.SetTracerProvider(idsOnly{})
		return func(context.Context) error { return nil }, nil
	}
	tp, err := NewProvider(ctx, service, getenv, opts...)
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
// OTEL_EXPORTER_OTLP_* variables, also read from getenv (otlp.go). A failed
// export goes to otel's global error handler (the standard logger, at INFO,
// once per batch) unless ReportExportFailures is given. Shut it down to
// flush.
func NewProvider(ctx context.Context, service string, getenv func(string) string, opts ...Option) (*sdktrace.TracerProvider, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if endpoint := Endpoint(getenv); endpoint != "" {
		otlp, err := newOTLPExporter(endpoint, getenv)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter: %w", err)
		}
		var exp sdktrace.SpanExporter = otlp
		if o.failures != nil {
			exp = reportingExporter{SpanExporter: otlp, failures: o.failures}
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(tpOpts...), nil
}

// An Option changes the provider NewProvider (or Setup) builds.
type Option func(*options)

type options struct {
	failures *ExportFailures
}

// ReportExportFailures has f count and log every failed export, in place of
// otel's global error handler.
func ReportExportFailures(f *ExportFailures) Option {
	return func(o *options) { o.failures = f }
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

type functionKey struct{}

// WithFunction returns ctx naming function as the one serving the request:
// a bundle of the faasd-CE stack (internal/bundle) stores the member it hands
// the request to, and every line logged with ctx (or a context derived from
// it, context.WithoutCancel's too) names that member as its function, not
// the process. An empty function leaves ctx as it is.
func WithFunction(ctx context.Context, function string) context.Context {
	if function == "" {
		return ctx
	}
	return context.WithValue(ctx, functionKey{}, function)
}

// FunctionFrom returns the function stored by WithFunction, empty if none.
func FunctionFrom(ctx context.Context) string {
	f, _ := ctx.Value(functionKey{}).(string)
	return f
}

// NewLogger returns a JSON logger to w that tags every line with the
// function name and, for *Context calls, the trace id, span id and call id.
// When the context names another function (WithFunction), or the logger is
// a member's (ForMember), the line's function is that one and its bundle is
// function, the process's name: on the faasd-CE stack, where one process
// serves several functions, a search by function finds the member's lines
// as on the standard stack, and the process that wrote them stays visible.
func NewLogger(w io.Writer, function string, level slog.Leveler) *slog.Logger {
	return slog.New(newCtxHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}), function, "", nil))
}

// ForMember returns log for member, a function a bundle of the faasd-CE
// stack serves: NewLogger's loggers (and those derived from them) name member
// as the function of every line, context or not (the lines its Build logs
// too), and their own function as its bundle. Another logger gets a member
// attribute instead.
func ForMember(log *slog.Logger, member string) *slog.Logger {
	if h, ok := log.Handler().(*ctxHandler); ok {
		return slog.New(newCtxHandler(h.base, h.function, member, h.ops))
	}
	return log.With("member", member)
}

// ctxHandler writes every record through base named for its function (and,
// for a bundle's member, its bundle), then adds the context's ids. The
// function is the first attribute of the line, outside any group, and there
// is one: the handler for each function a context names is base with the
// names, then the logger's own With and WithGroup calls (ops) replayed, made
// once per function and kept.
type ctxHandler struct {
	base     slog.Handler // NewLogger's JSON handler, without attributes or groups
	function string       // the process's: OPENFAAS_NAME, a bundle's name on faasd CE
	member   string       // ForMember's: the bundle's member this logger is for
	ops      []func(slog.Handler) slog.Handler
	own      slog.Handler // named for member, else function
	named    sync.Map     // a function WithFunction named -> its handler
}

func newCtxHandler(base slog.Handler, function, member string, ops []func(slog.Handler) slog.Handler) *ctxHandler {
	h := &ctxHandler{base: base, function: function, member: member, ops: ops}
	h.own = h.handlerFor(cmp.Or(member, function))
	return h
}

// handlerFor is base naming fn as the function, and the process as the
// bundle when fn is another function, with ops replayed.
func (h *ctxHandler) handlerFor(fn string) slog.Handler {
	attrs := []slog.Attr{slog.String("function", fn)}
	if fn != h.function {
		attrs = append(attrs, slog.String("bundle", h.function))
	}
	out := h.base.WithAttrs(attrs)
	for _, op := range h.ops {
		out = op(out)
	}
	return out
}

func (h *ctxHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.base.Enabled(ctx, level)
}

func (h *ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	out := h.own
	if fn := FunctionFrom(ctx); fn != "" && fn != cmp.Or(h.member, h.function) {
		v, ok := h.named.Load(fn)
		if !ok {
			v, _ = h.named.LoadOrStore(fn, h.handlerFor(fn))
		}
		out = v.(slog.Handler)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if id := CallID(ctx); id != "" {
		r.AddAttrs(slog.String("call_id", id))
	}
	return out.Handle(ctx, r)
}

func (h *ctxHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with(func(hh slog.Handler) slog.Handler { return hh.WithAttrs(attrs) })
}

// WithGroup with an empty name returns h, as slog.Handler requires.
func (h *ctxHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(hh slog.Handler) slog.Handler { return hh.WithGroup(name) })
}

func (h *ctxHandler) with(op func(slog.Handler) slog.Handler) slog.Handler {
	out := &ctxHandler{base: h.base, function: h.function, member: h.member,
		ops: append(slices.Clip(h.ops), op), own: op(h.own)}
	return out
}
