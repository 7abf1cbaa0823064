package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpExporter sends spans as OTLP/HTTP protobuf (POST <endpoint>, body an
// ExportTraceServiceRequest). It replaces otlptracehttp, whose config and
// collector packages link gRPC and grpc-gateway (66 + 3 packages, with their
// package initialisation) into every function process although no function
// speaks gRPC: docs/performance.md, "Memory (item 5)". The request is
// encoded here with protowire (otlpwire.go), field by field as
// opentelemetry-proto's trace.proto numbers them, without the generated
// message types, whose descriptors every function would build at start
// for nothing (ExportTraceServiceRequest has TracesData's single field, 1:
// repeated ResourceSpans).
//
// Settings, from getenv as the OTLP exporter specification names them:
// OTEL_EXPORTER_OTLP_[TRACES_]HEADERS (k=v,k2=v2, values URL-encoded),
// OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT (milliseconds, default 10000) and
// OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION (gzip or none).
type otlpExporter struct {
	endpoint string
	// shown is endpoint as errors name it (redacted).
	shown   string
	headers map[string]string
	timeout time.Duration
	gzip    bool
	client  *http.Client

	mu      sync.Mutex
	stopped bool
}

// newOTLPExporter checks endpoint and reads the settings from getenv.
func newOTLPExporter(endpoint string, getenv func(string) string) (*otlpExporter, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q: want an http(s) URL", redacted(endpoint))
	}
	setting := func(name string) string {
		if v := getenv("OTEL_EXPORTER_OTLP_TRACES_" + name); v != "" {
			return v
		}
		return getenv("OTEL_EXPORTER_OTLP_" + name)
	}
	e := &otlpExporter{endpoint: endpoint, shown: redacted(endpoint), headers: map[string]string{}, timeout: 10 * time.Second}
	if v := setting("TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT %q: want milliseconds", v)
		}
		e.timeout = time.Duration(ms) * time.Millisecond
	}
	switch v := setting("COMPRESSION"); v {
	case "", "none":
	case "gzip":
		e.gzip = true
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_COMPRESSION %q: want gzip or none", v)
	}
	if v := setting("HEADERS"); v != "" {
		for pair := range strings.SplitSeq(v, ",") {
			k, val, ok := strings.Cut(pair, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, errors.New("OTEL_EXPORTER_OTLP_HEADERS: want key=value pairs separated by commas")
			}
			if dec, err := url.PathUnescape(strings.TrimSpace(val)); err == nil {
				val = dec
			}
			e.headers[k] = val
		}
	}
	// No redirect is followed: a 3xx is a failed export (post). Followed,
	// a 307 re-sent the spans to wherever it pointed with the
	// OTEL_EXPORTER_OTLP_HEADERS credential (net/http strips only
	// Authorization and Cookie, and only across hosts), and a 302 turned
	// the export into a GET without a body whose 200 read as a success: the
	// spans were dropped silently.
	e.client = &http.Client{Transport: http.DefaultTransport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e, nil
}

// redacted is endpoint with its userinfo (user:password@, which Go's client
// sends as basic auth) replaced by "redacted@", for errors and logs: the SDK
// logs the exporter's errors, and the variable may carry a credential. It
// reads the authority itself, so an endpoint url.Parse refuses is redacted
// too.
func redacted(endpoint string) string {
	rest, prefix := endpoint, ""
	if i := strings.Index(endpoint, "://"); i >= 0 {
		prefix, rest = endpoint[:i+3], endpoint[i+3:]
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return endpoint
	}
	return prefix + "redacted@" + rest[at+1:]
}

// ExportSpans sends spans in one request, retrying a throttled or
// unavailable collector (429, 502, 503, 504) until the timeout.
func (e *otlpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	stopped := e.stopped
	e.mu.Unlock()
	if stopped || len(spans) == 0 {
		return nil
	}
	body := appendTracesData(nil, spans)
	if e.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		if err := zw.Close(); err != nil {
			return fmt.Errorf("otlp: gzip: %w", err)
		}
		body = buf.Bytes()
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		retry, err := e.post(ctx, body)
		if err == nil || retry <= 0 {
			return err
		}
		wait := max(retry, backoff)
		backoff = min(2*backoff, 5*time.Second)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// post sends body once; retry > 0 says the error is worth retrying after
// at least that long.
func (e *otlpExporter) post(ctx context.Context, body []byte) (retry time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("otlp: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if e.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	res, err := e.client.Do(req)
	if err != nil {
		// The client's *url.Error names the URL with its user name (only
		// the password masked).
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = e.shown
		}
		return time.Millisecond, fmt.Errorf("otlp: %w", err)
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
	if res.StatusCode/100 == 2 {
		return 0, nil
	}
	err = fmt.Errorf("otlp: %s answered %d: %s", e.shown, res.StatusCode, bytes.TrimSpace(msg))
	switch res.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		retry = time.Millisecond
		if s, perr := strconv.Atoi(res.Header.Get("Retry-After")); perr == nil && s > 0 {
			retry = time.Duration(s) * time.Second
		}
		return retry, err
	}
	return 0, err
}

// Shutdown makes later exports do nothing; the batcher flushes before it.
func (e *otlpExporter) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	e.client.CloseIdleConnections()
	return ctx.Err()
}
