package edge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// OpenTelemetryConfig is the config of Kong's opentelemetry plugin. The
// local edge propagates W3C trace context and, given a tracer provider
// (Options.TracerProvider), records a server span per request; the exporter
// fields are checked and unused (the provider exports to the local runtime's
// collector, faas-local -otlp).
type OpenTelemetryConfig struct {
	// Endpoint is the pre-3.8 name of TracesEndpoint.
	Endpoint string `json:"endpoint"`
	// TracesEndpoint is the OTLP/HTTP traces URL (one of the two is required).
	TracesEndpoint string `json:"traces_endpoint"`
	// LogsEndpoint is the OTLP/HTTP logs URL.
	LogsEndpoint string `json:"logs_endpoint"`
	// Headers are sent to the collector.
	Headers map[string]string `json:"headers"`
	// ResourceAttributes are added to every span.
	ResourceAttributes map[string]string `json:"resource_attributes"`
	// Queue tunes Kong's batch queue.
	Queue map[string]any `json:"queue"`
	// ConnectTimeout bounds the exporter's connection (ms).
	ConnectTimeout int `json:"connect_timeout"`
	// SendTimeout bounds the exporter's sending (ms).
	SendTimeout int `json:"send_timeout"`
	// ReadTimeout bounds the exporter's wait for the collector (ms).
	ReadTimeout int `json:"read_timeout"`
	// HTTPResponseHeaderForTraceID names a response header carrying the trace id.
	HTTPResponseHeaderForTraceID string `json:"http_response_header_for_traceid"`
	// HeaderType is the pre-3.7 propagation setting.
	HeaderType string `json:"header_type"`
	// SamplingRate is the share of traces sampled, from 0 to 1.
	SamplingRate *float64 `json:"sampling_rate"`
	// Propagation chooses the trace-context formats; only w3c is supported.
	Propagation *OpenTelemetryPropagation `json:"propagation"`
}

// OpenTelemetryPropagation is the propagation block of the opentelemetry plugin.
type OpenTelemetryPropagation struct {
	// Extract lists the formats read from the request.
	Extract []string `json:"extract"`
	// Inject lists the formats written to the upstream request.
	Inject []string `json:"inject"`
	// Clear lists headers removed from the upstream request.
	Clear []string `json:"clear"`
	// DefaultFormat is the format injected (w3c).
	DefaultFormat string `json:"default_format"`
}

func (c *OpenTelemetryConfig) setDefaults() {}

// Validate reports a missing traces endpoint, a propagation format other
// than w3c and a sampling rate outside [0, 1].
func (c *OpenTelemetryConfig) Validate() error {
	var errs []error
	if c.Endpoint == "" && c.TracesEndpoint == "" {
		errs = append(errs, errors.New("traces_endpoint is required"))
	}
	if p := c.Propagation; p != nil && p.DefaultFormat != "" && p.DefaultFormat != "w3c" {
		errs = append(errs, errors.New("only w3c propagation is supported by the local edge"))
	}
	if r := c.SamplingRate; r != nil && (*r < 0 || *r > 1) {
		errs = append(errs, fmt.Errorf("sampling_rate %v must be between 0 and 1", *r))
	}
	return errors.Join(errs...)
}

// traceparent is a valid version-00 W3C traceparent: what
// parseTraceparent accepts (TestParseTraceparentIsTheRegexp).
var traceparent = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)

// parseTraceparent returns the trace id and flags of v when it matches
// traceparent; it reads the fixed layout without the regexp's allocations.
func parseTraceparent(v string) (trace, flags string, ok bool) {
	if len(v) != 55 || v[:3] != "00-" || v[35] != '-' || v[52] != '-' ||
		!lowerHex(v[3:35]) || !lowerHex(v[36:52]) || !lowerHex(v[53:]) {
		return "", "", false
	}
	return v[3:35], v[53:], true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// newTraceparent is the traceparent the upstream gets: a new span id under
// trace (a new trace id when trace is "") with flags, from one read of
// crypto/rand and one allocation.
func newTraceparent(trace, flags string) string {
	var rnd [24]byte
	var b [55]byte
	copy(b[:], "00-")
	if trace == "" {
		_, _ = rand.Read(rnd[:])
		hex.Encode(b[3:35], rnd[:16])
	} else {
		_, _ = rand.Read(rnd[16:])
		copy(b[3:35], trace)
	}
	b[35] = '-'
	hex.Encode(b[36:52], rnd[16:])
	b[52] = '-'
	copy(b[53:], flags)
	return string(b[:])
}

// zeroTrace is the invalid all-zero trace id.
const zeroTrace = "00000000000000000000000000000000"

// openTelemetry is Kong's opentelemetry plugin reduced to W3C propagation
// and one server span: the upstream always receives a traceparent that
// continues the caller's trace (a new span id under the caller's trace id)
// or starts one. With a tracer, that span id is the edge's recorded span,
// named and described by the HTTP semantic conventions.
type openTelemetry struct {
	traceIDHeader string
	route         string
	tracer        trace.Tracer // nil: propagation only
}

func newOpenTelemetry(c OpenTelemetryConfig, s *scope) (plugin, error) {
	p := &openTelemetry{traceIDHeader: c.HTTPResponseHeaderForTraceID, route: s.route}
	if s.tracing != nil {
		p.tracer = s.tracing.Tracer("github.com/shopfaas/shop/dev/faaslocal/edge")
	}
	return p, nil
}

func (p *openTelemetry) wrap(next http.Handler) http.Handler {
	if p.tracer != nil {
		return p.traced(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace, flags, ok := parseTraceparent(r.Header.Get("Traceparent"))
		if !ok || trace == zeroTrace {
			trace, flags = "", "01"
		}
		tp := newTraceparent(trace, flags)
		r.Header.Set("Traceparent", tp)
		if p.traceIDHeader != "" {
			w.Header().Set(p.traceIDHeader, tp[3:35])
		}
		next.ServeHTTP(w, r)
	})
}

// traced records the request as a server span (a child of the caller's
// traceparent, if any) and passes the span's context upstream.
func (p *openTelemetry) traced(next http.Handler) http.Handler {
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Method
		attrs := []attribute.KeyValue{
			semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(publicPath(r)), semconv.URLScheme("http"),
			semconv.ServerAddress(r.Host), semconv.UserAgentOriginal(r.UserAgent()), semconv.NetworkProtocolVersion(fmt.Sprintf("%d.%d", r.ProtoMajor, r.ProtoMinor)),
		}
		if p.route != "" {
			name += " " + p.route
			attrs = append(attrs, semconv.HTTPRoute(p.route))
		}
		ctx, span := p.tracer.Start(prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)), name,
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		r = r.WithContext(ctx)
		r.Header.Del("Traceparent")
		prop.Inject(ctx, propagation.HeaderCarrier(r.Header))
		if p.traceIDHeader != "" {
			w.Header().Set(p.traceIDHeader, span.SpanContext().TraceID().String())
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		span.SetAttributes(semconv.HTTPResponseStatusCode(sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, "")
		}
	})
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
