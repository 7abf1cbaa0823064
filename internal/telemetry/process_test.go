package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"

	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/telemetry"
)

func TestLevel(t *testing.T) {
	for raw, want := range map[string]slog.Level{"debug": slog.LevelDebug, "WARN": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo, "loud": slog.LevelInfo} {
		if got := telemetry.Level(raw); got != want {
			t.Errorf("Level(%q) = %v, want %v", raw, got, want)
		}
	}
}

// The registry is served at /metrics until the context ends; "off" serves nothing.
func TestServeMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_served_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := telemetry.ServeMetrics(ctx, addr, reg, log); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "test_served_total 1") {
		t.Errorf("metrics page lacks the counter:\n%s", body)
	}
	cancel()
	if err := telemetry.ServeMetrics(context.Background(), "off", reg, log); err != nil {
		t.Errorf("off: %v", err)
	}
	if err := telemetry.ServeMetrics(context.Background(), "256.0.0.1:1", reg, log); err == nil {
		t.Error("a bad address was accepted")
	}
}

// A connector's StartProcess logs at LOG_LEVEL under its name, profiles when
// asked, and its end flushes the spans for at most 5 s: a collector that
// accepts the connection and never answers must not hold up a stop (the
// connectors waited for the exporter's own timeout, 60 s here).
func TestStartProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() { // accepts and never answers
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		_ = ln.Close()
		for c := range accepted {
			_ = c.Close()
		}
	}()
	dir := t.TempDir()
	env := map[string]string{
		"LOG_LEVEL":                   "warn ",
		"PPROF_CPU_DIR":               dir,
		"PPROF_FUNCTIONS":             "relay-x",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + ln.Addr().String(),
		"OTEL_EXPORTER_OTLP_TIMEOUT":  "60000",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out strings.Builder
	log, end, err := telemetry.StartProcess(ctx, "relay-x", &out, func(k string) string { return env[k] }, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = telemetry.Setup(context.Background(), "reset", func(string) string { return "" }) })
	log.Info("not at warn")
	log.Warn("at warn")
	_, span := otel.Tracer("test").Start(ctx, "op")
	span.End()
	cancel() // asked to stop
	start := time.Now()
	end()
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("end took %s with a collector that never answers, want about 5 s", took.Round(time.Second))
	}
	if s := out.String(); strings.Contains(s, "not at warn") || !strings.Contains(s, `"msg":"at warn"`) || !strings.Contains(s, "relay-x") {
		t.Errorf("log at LOG_LEVEL=warn under the process's name, got:\n%s", s)
	}
	profiles, _ := filepath.Glob(filepath.Join(dir, "relay-x.*.pprof"))
	if len(profiles) != 1 {
		t.Errorf("profiles written: %v, want one relay-x.<pid>.pprof", profiles)
	}
}

// A connector counts its failed span exports as a function does (fnserve):
// StartProcess registers shop_telemetry_export_failures_total
// {signal="traces"} on the connector's registry, at 0 from the start with or
// without a collector, one more per failed batch (here the collector
// redirects, which the exporter follows not), and logs the failure at WARN.
// Until 2026-12-08 the connectors counted none: otel's global handler
// logged each failed batch through Go's log package, at INFO.
func TestStartProcessCountsFailedExports(t *testing.T) {
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/v1/traces", http.StatusPermanentRedirect)
	}))
	defer moved.Close()
	t.Cleanup(func() { _, _ = telemetry.Setup(context.Background(), "reset", func(string) string { return "" }) })
	const counter = `
# HELP shop_telemetry_export_failures_total OTLP exports that failed (a batch of spans dropped: the collector down, refusing, redirecting or slow past OTEL_EXPORTER_OTLP_TIMEOUT), by signal: traces.
# TYPE shop_telemetry_export_failures_total counter
shop_telemetry_export_failures_total{signal="traces"} %d
`
	for _, otlp := range []string{"", moved.URL} {
		env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": otlp}
		reg := prometheus.NewRegistry()
		var out proctest.Output
		_, end, err := telemetry.StartProcess(t.Context(), "relay-x", &out, func(k string) string { return env[k] }, reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(counter, 0)), "shop_telemetry_export_failures_total"); err != nil {
			t.Errorf("collector %q: before any export: %v", otlp, err)
		}
		if otlp == "" {
			end()
			continue
		}
		_, span := otel.Tracer("test").Start(t.Context(), "op")
		span.End()
		end() // flushes the span: the export fails
		if err := testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(counter, 1)), "shop_telemetry_export_failures_total"); err != nil {
			t.Errorf("after a failed export: %v", err)
		}
		if l := out.String(); !strings.Contains(l, `"level":"WARN","msg":"telemetry export failed: spans dropped"`) || !strings.Contains(l, "308") || !strings.Contains(l, `"function":"relay-x"`) {
			t.Errorf("the connector's log after a failed export:\n%s", l)
		}
	}
}
