package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/telemetry"
)

// roundTripper answers every request with 200 and records its traceparent.
type roundTripper struct{ traceparent string }

func (rt *roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.traceparent = r.Header.Get("traceparent")
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

// TestClientWithoutExporterSendsTheTraceCheaply: without an exporter, a call
// through telemetry.Client is a new span of the caller's trace — its
// traceparent names the caller's trace and a span id of its own — the
// caller's request is left as it was, and it costs fewer allocations than
// otelhttp's transport, whose span attributes and metrics nothing would read.
func TestClientWithoutExporterSendsTheTraceCheaply(t *testing.T) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	if _, err := telemetry.Setup(t.Context(), "svc", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	ctx, span := otel.Tracer("test").Start(context.Background(), "server")
	defer span.End()
	caller := span.SpanContext()

	base := &roundTripper{}
	client := &http.Client{Transport: telemetry.Client(base)}
	call := func(c *http.Client) func() {
		return func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://gateway/function/x", strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if req.Header.Get("traceparent") != "" {
				t.Fatal("the caller's request was changed")
			}
		}
	}
	call(client)()
	parts := strings.Split(base.traceparent, "-")
	if len(parts) != 4 || parts[1] != caller.TraceID().String() || parts[2] == caller.SpanID().String() || parts[3] != "01" {
		t.Errorf("traceparent %q: want the caller's trace %s, a new span id, sampled", base.traceparent, caller.TraceID())
	}

	bare := testing.AllocsPerRun(100, call(&http.Client{Transport: base}))
	ours := testing.AllocsPerRun(100, call(client)) - bare
	full := testing.AllocsPerRun(100, call(&http.Client{Transport: otelhttp.NewTransport(base)})) - bare
	t.Logf("allocations per call: telemetry.Client %.0f, otelhttp %.0f", ours, full)
	if ours > full/2 {
		t.Errorf("telemetry.Client costs %.0f allocations per call, otelhttp's transport %.0f: want at most half", ours, full)
	}

	// An untraced caller gets a new trace.
	req := httptest.NewRequest(http.MethodGet, "http://gateway/", nil)
	req.RequestURI = ""
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if p := strings.Split(base.traceparent, "-"); len(p) != 4 || p[1] == caller.TraceID().String() || !trace.TraceID(mustHex(t, p[1])).IsValid() {
		t.Errorf("untraced call sent %q", base.traceparent)
	}
}

func mustHex(t *testing.T, s string) [16]byte {
	t.Helper()
	id, err := trace.TraceIDFromHex(s)
	if err != nil {
		t.Fatalf("trace id %q: %v", s, err)
	}
	return id
}
