package fnserve_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shopfaas/shop/fnserve"
)

// A server span is named "<function> <METHOD>" with the method as
// http.request.method holds it: a standard one, upper-cased, and _OTHER for
// any other. Each span name is an operation of the function's service in
// Jaeger, which lists and indexes them: a caller sending invented methods
// (FOO1, FOO2, …) must not add an operation per method, as the function's
// request metrics already fold them into one "unknown". Until 2026-12-07
// the span took the request's method as it came.
func TestASpanNameTakesNoMethodACallerInvented(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	h := fnserve.Handler(fnserve.Config{Name: "get-product", ExecTimeout: time.Minute, MaxRequestBytes: 1 << 20},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var got []string
	for _, method := range []string{"GET", "get", "Post", "FOO1", "FOO2"} {
		before := len(rec.Ended())
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/", nil))
		for _, s := range rec.Ended()[before:] {
			got = append(got, s.Name())
		}
	}
	want := []string{"get-product GET", "get-product GET", "get-product POST", "get-product _OTHER", "get-product _OTHER"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("server span names (-want +got):\n%s", diff)
	}
}
