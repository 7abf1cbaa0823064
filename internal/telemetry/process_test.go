package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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
