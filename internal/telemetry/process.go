package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Level parses a LOG_LEVEL value (debug, info, warn, error); anything else is
// info.
func Level(raw string) slog.Level {
	var level slog.Level
	if err := level.UnmarshalText([]byte(raw)); err != nil {
		return slog.LevelInfo
	}
	return level
}

// StartProcess sets up what every long-running connector runs under, named
// name: its JSON logger to stdout at LOG_LEVEL, the CPU profile PPROF_CPU_DIR
// and PPROF_FUNCTIONS ask for (written as soon as ctx ends, as fnserve's; see
// CPUProfilePath), and tracing (Setup), whose failed exports are counted in
// shop_telemetry_export_failures_total{signal="traces"} on reg (at 0 from
// the start; serve reg on the connector's /metrics) and logged at WARN at
// most once per ExportFailureLogEvery, as a function's are (fnserve). The
// returned end flushes pending spans, for at most 5 s (an unreachable
// collector must not hold up a stop), logs the failures no line reported,
// then writes the profile; defer it in run.
func StartProcess(ctx context.Context, name string, stdout io.Writer, getenv func(string) string, reg prometheus.Registerer) (log *slog.Logger, end func(), err error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	log = NewLogger(stdout, name, Level(env("LOG_LEVEL")))
	stopProfile, err := ProfileCPUUntil(ctx, CPUProfilePath(env("PPROF_CPU_DIR"), env("PPROF_FUNCTIONS"), name), log)
	if err != nil {
		return nil, nil, err
	}
	failures := NewExportFailures(reg, log)
	shutdownTracing, err := Setup(ctx, name, getenv, ReportExportFailures(failures))
	if err != nil {
		stopProfile()
		return nil, nil, err
	}
	return log, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FlushTimeout)
		defer cancel()
		if err := shutdownTracing(sctx); err != nil {
			log.Warn("telemetry shutdown: spans not flushed", "err", err.Error())
		}
		failures.Unlogged()
		stopProfile()
	}, nil
}

// FlushTimeout bounds the flush of a process's traces as it ends
// (StartProcess's end): part of the longest a connector's stop takes
// (connector.LongestStop).
const FlushTimeout = 5 * time.Second

// ServeMetrics serves reg at addr/metrics until ctx ends, for the
// long-running connectors ("", "off" or "disabled" turns it off). A listen
// failure is returned; a later serving failure is logged.
func ServeMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	if addr == "" || addr == "off" || addr == "disabled" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("metrics listening", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return nil
}
