package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// ExportFailureLogEvery is the least time between two log lines about failed
// exports of one process: a collector that refuses every batch (a wrong
// endpoint, a bad credential, a redirect) fails every few seconds, and the
// counter already counts each failure.
const ExportFailureLogEvery = time.Minute

// SignalTraces is the signal label of a failed trace export.
const SignalTraces = "traces"

// ExportFailures counts a process's failed OTLP exports in
// shop_telemetry_export_failures_total{signal} (at 0 from the start) and logs
// them at WARN, at most once per ExportFailureLogEvery: the first at once,
// later ones with how many failed since the last line. A nil *ExportFailures
// does nothing.
type ExportFailures struct {
	total *prometheus.CounterVec
	log   *slog.Logger
	now   func() time.Time // time.Now; a test's clock steps over the interval

	mu     sync.Mutex
	logged time.Time // when the last line was written; zero before the first
	missed int       // failures since that line that it did not report
}

// NewExportFailures registers the counter on reg; failures are logged on log.
func NewExportFailures(reg prometheus.Registerer, log *slog.Logger) *ExportFailures {
	f := &ExportFailures{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_telemetry_export_failures_total",
			Help: "OTLP exports that failed (a batch of spans dropped: the collector down, refusing, redirecting or slow past OTEL_EXPORTER_OTLP_TIMEOUT), by signal: traces.",
		}, []string{"signal"}),
		log: log,
		now: time.Now,
	}
	f.total.WithLabelValues(SignalTraces)
	reg.MustRegister(f.total)
	return f
}

// Failed counts one failed export of signal and logs it unless a line was
// written less than ExportFailureLogEvery ago.
func (f *ExportFailures) Failed(signal string, err error) {
	if f == nil {
		return
	}
	f.total.WithLabelValues(signal).Inc()
	f.mu.Lock()
	now := f.now()
	if !f.logged.IsZero() && now.Sub(f.logged) < ExportFailureLogEvery {
		f.missed++
		f.mu.Unlock()
		return
	}
	missed := f.missed
	f.logged, f.missed = now, 0
	f.mu.Unlock()
	// err names the endpoint redacted (otlp.go), never a header's value.
	f.log.Warn("telemetry export failed: spans dropped", "signal", signal, "err", err.Error(),
		"failures_unlogged_before", missed, "next_line_after", ExportFailureLogEvery.String())
}

// Unlogged logs at WARN how many failures no line has reported yet, if
// any: call it last, after the provider's shutdown, whose final flush is
// the likeliest to fall within ExportFailureLogEvery of the line before.
func (f *ExportFailures) Unlogged() {
	if f == nil {
		return
	}
	f.mu.Lock()
	missed := f.missed
	f.missed = 0
	f.mu.Unlock()
	if missed > 0 {
		f.log.Warn("telemetry export failed: spans dropped, not logged before", "failures", missed)
	}
}

// reportingExporter hands every failed export to failures and tells the
// SDK none failed: the SDK would give the error to otel's global handler,
// which logs it through the standard logger, at INFO, once per batch.
type reportingExporter struct {
	sdktrace.SpanExporter
	failures *ExportFailures
}

func (e reportingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.failures.Failed(SignalTraces, err)
	}
	return nil
}
