package telemetry_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	if got := tracesExportFailures(t, reg); got != 0 {
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
	if got := tracesExportFailures(t, reg); got != 3 {
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

// The WARN about failed exports is written once per ExportFailureLogEvery,
// counted from the last line: a collector that fails every 30 s or so for
// two intervals (once just before each interval's end) gets a line at the
// first failure and one at each interval's end, each with the failures the
// line before it did not report, and the one after the last line is logged
// by Unlogged, once. Every failure is counted. A clock the test steps
// stands for the minutes.
func TestExportFailuresAreWarnedOncePerInterval(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	failures := telemetry.NewExportFailures(reg, telemetry.NewLogger(&logs, "svc", slog.LevelInfo))
	start := time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)
	now := start
	telemetry.SetClock(failures, func() time.Time { return now })
	every := telemetry.ExportFailureLogEvery
	refused := errors.New("collector refused: 503")
	type line struct {
		Msg      string
		Unlogged int `json:"failures_unlogged_before"` // -1 when absent
		Failures int `json:"failures"`                 // Unlogged's; -1 when absent
	}
	lines := func() []line {
		t.Helper()
		var out []line
		for _, raw := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if raw == "" {
				continue
			}
			l := line{Unlogged: -1, Failures: -1}
			if err := json.Unmarshal([]byte(raw), &l); err != nil {
				t.Fatalf("line %q: %v", raw, err)
			}
			out = append(out, l)
		}
		return out
	}
	const failedMsg = "telemetry export failed: spans dropped"
	for _, step := range []struct {
		at       time.Duration // since the first failure
		unlogged int           // the new line's failures_unlogged_before; -1: no line
	}{
		{0, 0},
		{30 * time.Second, -1},
		{every - time.Millisecond, -1},
		{every, 2},
		{every + 30*time.Second, -1},
		{2*every - time.Millisecond, -1},
		{2 * every, 2},
		{2*every + 30*time.Second, -1},
	} {
		before := len(lines())
		now = start.Add(step.at)
		failures.Failed(telemetry.SignalTraces, refused)
		got := lines()
		switch {
		case step.unlogged < 0 && len(got) != before:
			t.Errorf("a failure %s after the first, %s after the last line, was logged: %+v", step.at, step.at%every, got[before:])
		case step.unlogged >= 0 && len(got) != before+1:
			t.Errorf("a failure %s after the first wrote %d lines, want 1 (a line per %s)", step.at, len(got)-before, every)
		case step.unlogged >= 0:
			if l := got[before]; l.Msg != failedMsg || l.Unlogged != step.unlogged {
				t.Errorf("the line %s after the first failure: %q, failures_unlogged_before %d, want %q and %d",
					step.at, l.Msg, l.Unlogged, failedMsg, step.unlogged)
			}
		}
	}
	if n := len(lines()); n != 3 {
		t.Errorf("%d lines for failures every 30 s over two intervals, want 3 (the first, and one per interval):\n%s", n, logs.String())
	}
	failures.Unlogged()
	if got := lines(); len(got) != 4 || got[3].Failures != 1 {
		t.Errorf("after Unlogged: want a fourth line with the 1 failure not logged:\n%s", logs.String())
	}
	failures.Unlogged()
	if n := len(lines()); n != 4 {
		t.Errorf("a second Unlogged with nothing unreported wrote a line: %d lines, want 4", n)
	}
	if v := tracesExportFailures(t, reg); v != 8 {
		t.Errorf("shop_telemetry_export_failures_total = %v after 8 failures, want 8", v)
	}
}

// tracesExportFailures is shop_telemetry_export_failures_total{signal="traces"}
// on reg; the test fails when it is missing.
func tracesExportFailures(t *testing.T, reg *prometheus.Registry) float64 {
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
