package telemetry

import (
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Exporting reports whether the process's spans go anywhere: false after
// Setup without an endpoint (the global provider records nothing), true
// otherwise — also when Setup was never called, so tests and tools that
// install their own provider keep full instrumentation.
func Exporting() bool {
	_, idsOnly := otel.GetTracerProvider().(idsOnly)
	return !idsOnly
}

// Server wraps next with a server span per request, continuing the trace of
// the request's traceparent. While Exporting the span has otelhttp's name,
// attributes and status (httpspans.go; name(operation, r) names it, nil
// means operation); otherwise the request only gets the span's ids in its
// context — a dozen attributes per request that nothing would read. When a
// bundle's member serves the request (fnhttp.ServedBy), the span is named
// name(member, r) and has faas.name (the member) and shop.bundle
// (operation, the bundle's name): the process's service.name stays the
// bundle's.
func Server(next http.Handler, operation string, name func(operation string, r *http.Request) string) http.Handler {
	if name == nil {
		name = func(op string, _ *http.Request) string { return op }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Exporting() {
			serveSpan(w, r, next, operation, name)
			return
		}
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), headerCarrier(r.Header))
		ctx, span := idsTracer{}.Start(ctx, operation)
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Client wraps base (http.DefaultTransport when nil) so that every call
// is a client span of the caller's trace and carries its traceparent. While
// Exporting the span has otelhttp's transport's name, attributes and status
// (httpspans.go); otherwise the call gets a span id and the header, nothing
// else.
func Client(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return clientTransport{base: base}
}

type clientTransport struct{ base http.RoundTripper }

// RoundTrip implements http.RoundTripper. Like otelhttp's, it leaves the
// caller's request untouched and sends a copy with the header.
func (t clientTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if Exporting() {
		return roundTripSpan(t.base, r)
	}
	ctx, span := idsTracer{}.Start(r.Context(), "")
	defer span.End()
	out := r.WithContext(ctx)
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	otel.GetTextMapPropagator().Inject(ctx, headerCarrier(out.Header))
	return t.base.RoundTrip(out)
}

// headerCarrier is propagation.HeaderCarrier for the W3C propagators, which
// ask for their headers in lower case (traceparent, tracestate, baggage):
// http.Header would build the canonical name anew on every Get, Values and
// Set; here each is a constant.
type headerCarrier http.Header

func canonicalKey(k string) string {
	switch k {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	case "baggage":
		return "Baggage"
	}
	return k
}

// Get implements propagation.TextMapCarrier.
func (c headerCarrier) Get(key string) string { return http.Header(c).Get(canonicalKey(key)) }

// Values implements propagation.ValuesGetter (the baggage propagator reads
// every Baggage header).
func (c headerCarrier) Values(key string) []string { return http.Header(c).Values(canonicalKey(key)) }

// Set implements propagation.TextMapCarrier.
func (c headerCarrier) Set(key, value string) { http.Header(c).Set(canonicalKey(key), value) }

// Keys implements propagation.TextMapCarrier.
func (c headerCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }
