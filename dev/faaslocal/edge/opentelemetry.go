package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/telemetry"
)

// OpenTelemetryConfig is the config of Kong's opentelemetry plugin. The
// local edge starts the shop's trace (a new trace id, never the client's) and
// writes it upstream as a W3C traceparent; given a tracer provider
// (Options.TracerProvider) it records that trace's root, a server span per
// request linked to the client's span context. The exporter fields are
// checked and unused (the provider exports to the local runtime's collector,
// faas-local -otlp), and so is SamplingRate: the provider's sampler decides.
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
	// HTTPResponseHeaderForTraceID names a response header carrying the
	// trace id (the shop's, not the client's).
	HTTPResponseHeaderForTraceID string `json:"http_response_header_for_traceid"`
	// HeaderType is the pre-3.7 propagation setting; refused (Kong ignores it
	// once Propagation sets extract, which it must).
	HeaderType string `json:"header_type"`
	// SamplingRate is the share of traces Kong samples, from 0 to 1.
	SamplingRate *float64 `json:"sampling_rate"`
	// Propagation chooses the trace-context formats. Required, with Extract
	// empty and Inject [w3c]: the shop's trace starts at the edge.
	Propagation *OpenTelemetryPropagation `json:"propagation"`
}

// OpenTelemetryPropagation is the propagation block of the opentelemetry plugin.
type OpenTelemetryPropagation struct {
	// Extract lists the formats read from the request. It must be set and
	// empty: Kong then continues no client's trace (a new trace id, its own
	// sampling decision), which is all the local edge does.
	Extract []string `json:"extract"`
	// Inject lists the formats written to the upstream request; only w3c.
	Inject []string `json:"inject"`
	// Clear lists headers removed from the upstream request before the
	// edge's traceparent is written (the client's tracestate, baggage).
	Clear []string `json:"clear"`
	// DefaultFormat is the format injected (w3c).
	DefaultFormat string `json:"default_format"`
}

func (c *OpenTelemetryConfig) setDefaults() {}

// Validate reports a missing traces endpoint, a propagation that would
// continue a client's trace (extract not set empty, the legacy header_type)
// or inject anything but w3c, a clear entry that is not a header name, and
// a sampling rate outside [0, 1].
func (c *OpenTelemetryConfig) Validate() error {
	var errs []error
	if c.Endpoint == "" && c.TracesEndpoint == "" {
		errs = append(errs, errors.New("traces_endpoint is required"))
	}
	if c.HeaderType != "" {
		errs = append(errs, errors.New("header_type is deprecated and ignored once propagation.extract is set; use propagation"))
	}
	p := c.Propagation
	switch {
	case p == nil || p.Extract == nil:
		errs = append(errs, errors.New("propagation.extract must be set to []: without it Kong continues the client's trace (header_type preserve)"))
	case len(p.Extract) > 0:
		errs = append(errs, fmt.Errorf("propagation.extract %v: the shop's trace starts at the edge, so extract must be []", p.Extract))
	}
	if p != nil {
		if p.DefaultFormat != "" && p.DefaultFormat != "w3c" {
			errs = append(errs, errors.New("only w3c propagation is supported by the local edge"))
		}
		if !slices.Equal(p.Inject, []string{"w3c"}) {
			errs = append(errs, fmt.Errorf("propagation.inject %v: the local edge injects exactly [w3c]", p.Inject))
		}
		for _, h := range p.Clear {
			if !headerName.MatchString(h) {
				errs = append(errs, fmt.Errorf("propagation.clear %q is not a header name", h))
			}
		}
	}
	if r := c.SamplingRate; r != nil && (*r < 0 || *r > 1) {
		errs = append(errs, fmt.Errorf("sampling_rate %v must be between 0 and 1", *r))
	}
	return errors.Join(errs...)
}

// newTraceparent is the traceparent of a new trace the edge starts when it
// records no span: a new trace id and span id, sampled (what the SDK's
// default sampler decides for a root), from one read of crypto/rand and one
// allocation.
func newTraceparent() string {
	var rnd [24]byte
	var b [55]byte
	_, _ = rand.Read(rnd[:])
	copy(b[:], "00-")
	hex.Encode(b[3:35], rnd[:16])
	b[35] = '-'
	hex.Encode(b[36:52], rnd[16:])
	copy(b[52:], "-01")
	return string(b[:])
}

// openTelemetry is Kong's opentelemetry plugin reduced to W3C propagation
// and one server span. The shop's trace starts here: the upstream always
// receives the traceparent of a new trace, never the client's, so a client
// can neither choose the trace id the shop records (timeline entries, log
// lines, events) nor switch the shop's sampling off (a -00 flag) or down. With
// a tracer, that traceparent is the edge's recorded span: the trace's root,
// sampled as the provider's sampler decides, named and described by the HTTP
// semantic conventions, and linked to the client's span context when the
// request carries a valid one.
type openTelemetry struct {
	traceIDHeader string
	route         string
	clear         []string     // canonical names of the headers removed before the edge's traceparent is set
	tracer        trace.Tracer // nil: propagation only
}

func newOpenTelemetry(c OpenTelemetryConfig, s *scope) (plugin, error) {
	p := &openTelemetry{traceIDHeader: c.HTTPResponseHeaderForTraceID, route: s.route}
	for _, name := range c.Propagation.Clear {
		p.clear = append(p.clear, http.CanonicalHeaderKey(name))
	}
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
		tp := newTraceparent()
		p.clearHeaders(r.Header)
		r.Header.Set("Traceparent", tp)
		if p.traceIDHeader != "" {
			w.Header().Set(p.traceIDHeader, tp[3:35])
		}
		next.ServeHTTP(w, r)
	})
}

// clearHeaders removes the configured headers (propagation.clear) from the
// upstream request, by their canonical names (no allocation per request).
func (p *openTelemetry) clearHeaders(h http.Header) {
	for _, name := range p.clear {
		delete(h, name)
	}
}

// traced records the request as the root server span of a new trace, linked
// to the caller's traceparent (if valid), and passes the span's context
// upstream.
func (p *openTelemetry) traced(next http.Handler) http.Handler {
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The method as the conventions hold it (a standard one,
		// upper-cased, else _OTHER), as fnserve's spans take it: a span
		// name is a Jaeger operation, and any method reaches the global
		// plugins of a request no route matches.
		name := telemetry.Method(r.Method)
		attrs := []attribute.KeyValue{
			semconv.HTTPRequestMethodKey.String(name), semconv.URLPath(publicPath(r)), semconv.URLScheme("http"),
			semconv.ServerAddress(r.Host), semconv.UserAgentOriginal(r.UserAgent()), semconv.NetworkProtocolVersion(fmt.Sprintf("%d.%d", r.ProtoMajor, r.ProtoMinor)),
		}
		if name != r.Method {
			attrs = append(attrs, semconv.HTTPRequestMethodOriginal(r.Method))
		}
		if p.route != "" {
			name += " " + p.route
			attrs = append(attrs, semconv.HTTPRoute(p.route))
		}
		opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...)}
		if client := trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.HeaderCarrier(r.Header))); client.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: client}))
		}
		ctx, span := p.tracer.Start(r.Context(), name, opts...)
		defer span.End()
		r = r.WithContext(ctx)
		p.clearHeaders(r.Header)
		r.Header.Del("Traceparent")
		prop.Inject(ctx, propagation.HeaderCarrier(r.Header))
		if p.traceIDHeader != "" {
			w.Header().Set(p.traceIDHeader, span.SpanContext().TraceID().String())
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		// Deferred, so that an answer the proxy cut (a panic with
		// http.ErrAbortHandler, which goes on) still gets its status code
		// and ends as an error.
		defer func() {
			v := recover()
			span.SetAttributes(semconv.HTTPResponseStatusCode(sw.status))
			if v != nil {
				span.SetStatus(codes.Error, "answer cut")
				panic(v)
			}
			if sw.status >= 500 {
				span.SetStatus(codes.Error, "")
			}
		}()
		next.ServeHTTP(sw, r)
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
