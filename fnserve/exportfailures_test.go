package fnserve_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/shopfaas/shop/internal/config"
)

// A process whose collector refuses its exports (here: redirects, which
// the exporter follows not) serves shop_telemetry_export_failures_total
// {signal="traces"} from its start, at 0, and its shutdown's failed flush
// is logged at WARN with the status, not handed to otel's handler (which
// logged it at INFO through the standard logger, and counted it nowhere).
func TestAFailedExportIsServedAsAMetricAndWarned(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	var posts atomic.Int32
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		http.Redirect(w, r, "http://127.0.0.1:1/v1/traces", http.StatusPermanentRedirect)
	}))
	defer moved.Close()
	var stdout bytes.Buffer // written by Run's logger only, read after Run returned
	handle := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("{}")) })
	build := func(*config.Reader, *slog.Logger) (http.Handler, error) { return handle, nil }
	s := serveBuild(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": moved.URL}, &stdout, build)
	if _, metrics := get(t, s.url+"/_/metrics"); !strings.Contains(metrics, `shop_telemetry_export_failures_total{signal="traces"} 0`) {
		t.Errorf("/_/metrics before any export lacks the failures at 0:\n%s", metrics)
	}
	if code, _ := get(t, s.url+"/"); code != http.StatusOK {
		t.Fatalf("the function answered %d", code)
	}
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n := posts.Load(); n == 0 {
		t.Fatal("the shutdown exported nothing")
	}
	var warned bool
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.Contains(line, "answered 308") {
			warned = warned || strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, `"signal":"traces"`)
		}
	}
	if !warned {
		t.Errorf("no WARN line names the failed export's 308:\n%s", stdout.String())
	}
}
