package edge

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// An answer the upstream cuts after its headers (the proxy can only cut
// the client's too, panicking with http.ErrAbortHandler) is still counted
// and traced: Kong's log phase runs for it, with the status Kong sent, and
// the edge's span ends with that status and as an error. Until 2026-12-07
// the panic went past the prometheus plugin's count and the span's
// attributes: the cut answer was counted nowhere, and its span had no
// status code and no error.
func TestACutAnswerIsCountedAndTraced(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(up.Close)
	spans := tracetest.NewInMemoryExporter()
	e := newEdge(t, doc+`  - name: prometheus
    config: {status_code_metrics: true}
  - name: opentelemetry
    config: {traces_endpoint: http://jaeger:4318/v1/traces, propagation: {extract: [], inject: [w3c]}}
`, Options{Upstreams: map[string]string{"gateway:8080": strings.TrimPrefix(up.URL, "http://")},
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))})
	t.Cleanup(func() { _ = e.Close() })
	srv := httptest.NewServer(e)
	// The client sees the cut as an error, before the headers or after.
	if res, err := http.Get(srv.URL + "/api/x"); err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Error("the cut answer read whole")
		}
	}
	srv.Close() // waits for the edge's handler to end
	rec := httptest.NewRecorder()
	e.Metrics().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	want := `kong_http_requests_total{code="200",consumer="",route="short-prefix",service="short-prefix",workspace="default"} 1`
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("the cut answer is not counted, want %s in:\n%s", want, rec.Body)
	}
	got := spans.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans, want the edge's one", len(got))
	}
	attrs := map[string]string{}
	for _, kv := range got[0].Attributes {
		attrs[string(kv.Key)] = fmt.Sprint(kv.Value.AsInterface())
	}
	if attrs["http.response.status_code"] != "200" || got[0].Status.Code != codes.Error {
		t.Errorf("span status code %q status %v, want 200 and Error", attrs["http.response.status_code"], got[0].Status)
	}
}
