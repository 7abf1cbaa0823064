package telemetry_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"

	"github.com/shopfaas/shop/internal/telemetry"
)

// A collector that refuses every export (here it redirects, which the
// exporter follows not) is counted once per failed batch in
// shop_telemetry_export_failures_total{signal="traces"}, at 0 before the
// first, and logged at WARN once per ExportFailureLogEvery, naming the
// status but never the credential; otel's global handler (the standard
// logger, INFO, a line per batch) hears nothing.
func TestAFailedExportIsCountedAndWarnedOncePerInterval(t *testing.T) {
	var posts atomic.Int32
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		http.Redirect(w, r, "http://127.0.0.1:1/v1/traces", http.StatusPermanentRedirect)
	}))
	defer moved.Close()
	var handled atomic.Int32
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) { handled.Add(1) }))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })

	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	failures := telemetry.NewExportFailures(reg, telemetry.NewLogger(&logs, "svc", slog.LevelInfo))
	counted := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == "shop_telemetry_export_failures_total" && len(m.GetLabel()) == 1 &&
					m.GetLabel()[0].GetName() == "signal" && m.GetLabel()[0].GetValue() == "traces" {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no shop_telemetry_export_failures_total{signal=\"traces\"}")
		return 0
	}
	if got := counted(); got != 0 {
		t.Fatalf("before any export: %v failures, want 0", got)
	}
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": moved.URL,
		"OTEL_EXPORTER_OTLP_HEADERS":  "X-Api-Key=collector-secret",
	}
	tp, err := telemetry.NewProvider(t.Context(), "svc", func(k string) string { return env[k] }, telemetry.ReportExportFailures(failures))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, span := tp.Tracer("test").Start(t.Context(), "op")
		span.End()
		if err := tp.ForceFlush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := posts.Load(); n != 3 {
		t.Fatalf("the collector got %d exports, want 3", n)
	}
	if got := counted(); got != 3 {
		t.Errorf("shop_telemetry_export_failures_total = %v after 3 failed exports, want 3", got)
	}
	if n := handled.Load(); n != 0 {
		t.Errorf("otel's global error handler got %d errors, want 0 (ExportFailures reports them)", n)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines for 3 failures within %s, want 1:\n%s", len(lines), telemetry.ExportFailureLogEvery, logs.String())
	}
	var line struct{ Level, Msg, Signal, Err string }
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line.Level != "WARN" || line.Signal != "traces" || !strings.Contains(line.Err, "308") {
		t.Errorf("line %s: want WARN, signal traces and the 308 in err", lines[0])
	}
	if strings.Contains(logs.String(), "collector-secret") {
		t.Errorf("a line shows the header's credential: %s", logs.String())
	}
}
