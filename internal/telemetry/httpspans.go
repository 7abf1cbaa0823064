package telemetry

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The HTTP server and client spans while Exporting: the names, attributes
// (OpenTelemetry's HTTP semantic conventions, v1.43) and statuses that
// otelhttp v0.72 gave them, without otelhttp, whose generated semconv
// packages and metric instruments were linked into and initialised in every
// function (docs/performance.md, "Memory (item 5)"; −0.25 MiB idle RSS).
// otelhttp's metrics are not kept: no MeterProvider is installed, so they
// recorded nothing. The instrumentation scope is this package's.
// TestHTTPSpansMatchOtelhttp runs otelhttp beside these and compares.

// scope is the instrumentation scope of this package's spans, HTTP's and
// Redis's: its import path, as every span's scope is (docs/observability.md).
const scope = "github.com/shopfaas/shop/internal/telemetry"

// tracerFor is otelhttp's choice: the provider of the span already in ctx,
// else the global one.
func tracerFor(r *http.Request) trace.Tracer {
	if span := trace.SpanFromContext(r.Context()); span.SpanContext().IsValid() {
		return span.TracerProvider().Tracer(scope)
	}
	return otel.GetTracerProvider().Tracer(scope)
}

// serveSpan serves r with next inside a server span.
func serveSpan(w http.ResponseWriter, r *http.Request, next http.Handler, operation string, name func(string, *http.Request) string) {
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), headerCarrier(r.Header))
	ctx, span := tracerFor(r).Start(ctx, name(operation, r), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(serverRequestAttrs(r)...))
	defer span.End()
	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		prev := r.Body
		r.Body = body
		defer func() { r.Body = prev }()
	}
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	rCtx := r.WithContext(ctx)
	defer func() {
		if rCtx.MultipartForm != nil { // so net/http removes its temporary files
			r.MultipartForm = rCtx.MultipartForm
		}
	}()
	// Deferred, so that a panic passing through (fnserve cuts an answer
	// that had begun with http.ErrAbortHandler) leaves the span named and
	// an error, status 500, and goes on with the same value.
	defer func() {
		p := recover()
		endServeSpan(span, rw, body, rCtx, operation, name, p != nil)
		if p != nil {
			panic(p)
		}
	}()
	next.ServeHTTP(rw, rCtx)
}

// endServeSpan names the server span and sets its status and response
// attributes once next has served, or panicked.
func endServeSpan(span trace.Span, rw *statusWriter, body *countingBody, rCtx *http.Request, operation string,
	name func(string, *http.Request) string, panicked bool) {
	status, written, servedBy := rw.result()
	if panicked {
		status = http.StatusInternalServerError
	}
	var attrs []attribute.KeyValue
	if servedBy != "" && servedBy != operation {
		// A bundle's member served (fnhttp.ServedBy): the span is the
		// member's, as it is on the stack where the member is its own
		// function, and names the bundle it ran in. faas.name is the
		// conventions' (v1.37) name of the function that executes, a span
		// attribute when one process serves several functions with one
		// tracer provider; faas.invoked_name is a caller's (the connector's
		// deliver span).
		attrs = append(attrs, attribute.String("faas.name", servedBy), attribute.String("shop.bundle", operation))
		span.SetName(name(servedBy, rCtx))
	} else if rCtx.Pattern != "" {
		span.SetName(name(operation, rCtx))
	}
	switch {
	case status < 100 || status >= 600:
		span.SetStatus(codes.Error, fmt.Sprintf("Invalid HTTP status code %d", status))
	case status >= 500:
		span.SetStatus(codes.Error, "")
	}
	if body != nil && body.n > 0 {
		attrs = append(attrs, attribute.Int("http.request.body.size", int(body.n)))
	}
	if written > 0 {
		attrs = append(attrs, attribute.Int("http.response.body.size", int(written)))
	}
	if status > 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", status))
	}
	span.SetAttributes(attrs...)
}

// serverRequestAttrs are the attributes a server span starts with.
func serverRequestAttrs(r *http.Request) []attribute.KeyValue {
	host, port := splitHostPort(r.Host)
	method, original := methodAttrs(r.Method)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := make([]attribute.KeyValue, 0, 14)
	attrs = append(attrs, attribute.String("server.address", host), method, attribute.String("url.scheme", scheme))
	if p := requiredPort(r.TLS != nil, port); p > 0 {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	if original.Valid() {
		attrs = append(attrs, original)
	}
	peer, peerPort := splitHostPort(r.RemoteAddr)
	if peer != "" {
		attrs = append(attrs, attribute.String("network.peer.address", peer))
		if peerPort > 0 {
			attrs = append(attrs, attribute.Int("network.peer.port", peerPort))
		}
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, attribute.String("user_agent.original", ua))
	}
	// client.address is the first X-Forwarded-For entry, as otelhttp sets it
	// (kept alike on purpose, TestHTTPSpansMatchOtelhttp):
	// the entry the client wrote, which Kong passes on and appends after, so
	// the attribute is the client's claim, never evidence (docs/edge.md).
	client := r.Header.Get("X-Forwarded-For")
	if i := strings.IndexByte(client, ','); i >= 0 {
		client = client[:i]
	}
	if client == "" {
		client = peer
	}
	if client != "" {
		attrs = append(attrs, attribute.String("client.address", client))
	}
	if r.URL != nil && r.URL.Path != "" {
		attrs = append(attrs, attribute.String("url.path", r.URL.Path))
	}
	attrs = appendProtocol(attrs, r.Proto)
	if i := strings.IndexByte(r.Pattern, '/'); i >= 0 {
		attrs = append(attrs, attribute.String("http.route", r.Pattern[i:]))
	}
	return attrs
}

// roundTripSpan sends r through base inside a client span, which ends when
// the response's body is read to its end or closed (or at once on an error).
func roundTripSpan(base http.RoundTripper, r *http.Request) (*http.Response, error) {
	ctx, span := tracerFor(r).Start(r.Context(), "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindClient))
	r = r.Clone(ctx) // a RoundTripper leaves its caller's request alone
	span.SetAttributes(clientRequestAttrs(r)...)
	otel.GetTextMapPropagator().Inject(ctx, headerCarrier(r.Header))
	res, err := base.RoundTrip(r)
	if err == nil {
		switch {
		case res == nil:
			err = fmt.Errorf("http: RoundTripper implementation (%T) returned a nil *Response with a nil error", base)
		case res.Body == nil && res.ContentLength > 0 && r.Method != http.MethodHead:
			res, err = nil, fmt.Errorf("http: RoundTripper implementation (%T) returned a *Response with content length %d but a nil Body", base, res.ContentLength)
		case res.Body == nil:
			res.Body = http.NoBody
		}
	}
	if err != nil {
		span.SetAttributes(errorType(err))
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return res, err
	}
	attrs := []attribute.KeyValue{}
	if res.StatusCode > 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", res.StatusCode))
	}
	if res.StatusCode >= 400 || res.StatusCode < 100 {
		attrs = append(attrs, attribute.String("error.type", strconv.Itoa(res.StatusCode)))
	}
	span.SetAttributes(appendProtocol(attrs, res.Proto)...)
	switch {
	case res.StatusCode < 100 || res.StatusCode >= 600:
		span.SetStatus(codes.Error, fmt.Sprintf("Invalid HTTP status code %d", res.StatusCode))
	case res.StatusCode >= 400:
		span.SetStatus(codes.Error, "")
	}
	sb := &spanBody{span: span, body: res.Body}
	if _, ok := res.Body.(io.ReadWriteCloser); ok {
		res.Body = sb
	} else {
		res.Body = struct{ io.ReadCloser }{sb}
	}
	return res, nil
}

// clientRequestAttrs are the attributes a client span starts with.
func clientRequestAttrs(r *http.Request) []attribute.KeyValue {
	var urlHost string
	if r.URL != nil {
		urlHost = r.URL.Host
	}
	var host string
	var port int
	for _, hp := range []string{urlHost, r.Header.Get("Host")} {
		if host, port = splitHostPort(hp); host != "" || port > 0 {
			break
		}
	}
	method, original := methodAttrs(r.Method)
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, method)
	if original.Valid() {
		attrs = append(attrs, original)
	}
	var full string
	if r.URL != nil {
		u := *r.URL
		u.User = nil // never a password in a span
		full = u.String()
	}
	attrs = append(attrs, attribute.String("url.full", full), attribute.String("server.address", host))
	if p := requiredPort(r.URL != nil && r.URL.Scheme == "https", port); p > 0 {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	return appendProtocol(attrs, r.Proto)
}

// spanBody ends the client span when the body is read to its end or closed;
// a failed read marks the span as failed.
type spanBody struct {
	span  trace.Span
	body  io.ReadCloser
	ended sync.Once
}

func (b *spanBody) end() { b.ended.Do(func() { b.span.End() }) }

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	switch err {
	case nil:
	case io.EOF:
		b.end()
	default:
		b.span.SetAttributes(errorType(err))
		b.span.SetStatus(codes.Error, err.Error())
	}
	return n, err
}

// Write lets a 101 Switching Protocols body be written, as the transport's
// own body allows.
func (b *spanBody) Write(p []byte) (int, error) {
	n, err := b.body.(io.Writer).Write(p)
	if err != nil {
		b.span.SetAttributes(errorType(err))
		b.span.SetStatus(codes.Error, err.Error())
	}
	return n, err
}

func (b *spanBody) Close() error {
	b.end()
	return b.body.Close()
}

// countingBody counts the bytes of a request body the handler read.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// statusWriter records the status and the bytes written; informational
// statuses other than 101 are passed on and not recorded, as net/http
// treats them.
type statusWriter struct {
	http.ResponseWriter
	mu          sync.Mutex
	status      int
	wroteHeader bool
	written     int64
	servedBy    string // the bundle's member that served, when one did (fnhttp.ServedBy)
}

// SetServedBy is fnhttp.ServedBy's: the span is the member's.
func (w *statusWriter) SetServedBy(function string) {
	w.mu.Lock()
	w.servedBy = function
	w.mu.Unlock()
}

func (w *statusWriter) WriteHeader(code int) {
	w.mu.Lock()
	w.writeHeader(code)
	w.mu.Unlock()
}

func (w *statusWriter) writeHeader(code int) {
	if !w.wroteHeader && (code < 100 || code > 199 || code == http.StatusSwitchingProtocols) {
		w.wroteHeader = true
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

// Flush passes a flush on (a streamed answer), writing the header first.
func (w *statusWriter) Flush() {
	w.mu.Lock()
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	w.mu.Unlock()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) result() (status int, written int64, servedBy string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status, w.written, w.servedBy
}

// Method is the http.request.method of a request with method m: a standard
// method as is, or upper-cased, and "_OTHER" for any other. A span named
// after a request's method takes it from here: each span name is an
// operation Jaeger lists and indexes for the service, and a caller must not
// add one per method it invents.
func Method(m string) string {
	v, _ := methodAttrs(m)
	return v.Value.AsString()
}

// methodAttrs is http.request.method (one of the nine standard methods, in
// upper case, or _OTHER) and, when that differs from what was sent,
// http.request.method_original.
func methodAttrs(method string) (attribute.KeyValue, attribute.KeyValue) {
	if method == "" {
		return attribute.String("http.request.method", "_OTHER"), attribute.KeyValue{}
	}
	if standardMethod(method) {
		return attribute.String("http.request.method", method), attribute.KeyValue{}
	}
	original := attribute.String("http.request.method_original", method)
	if up := strings.ToUpper(method); standardMethod(up) {
		return attribute.String("http.request.method", up), original
	}
	return attribute.String("http.request.method", "_OTHER"), original
}

func standardMethod(m string) bool {
	switch m {
	case http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
		http.MethodPatch, http.MethodPost, http.MethodPut, http.MethodTrace:
		return true
	}
	return false
}

// appendProtocol adds network.protocol.name (when not http) and
// network.protocol.version of proto ("HTTP/1.1").
func appendProtocol(attrs []attribute.KeyValue, proto string) []attribute.KeyValue {
	name, version, _ := strings.Cut(proto, "/")
	switch name {
	case "HTTP":
		name = "http"
	case "QUIC":
		name = "quic"
	case "SPDY":
		name = "spdy"
	default:
		name = strings.ToLower(name)
	}
	if name != "" && name != "http" {
		attrs = append(attrs, attribute.String("network.protocol.name", name))
	}
	if version != "" {
		attrs = append(attrs, attribute.String("network.protocol.version", version))
	}
	return attrs
}

// splitHostPort splits host[:port]; port is -1 when absent or invalid.
func splitHostPort(hostport string) (host string, port int) {
	port = -1
	if strings.HasPrefix(hostport, "[") {
		end := strings.LastIndexByte(hostport, ']')
		if end < 0 {
			return "", port
		}
		if strings.LastIndexByte(hostport[end:], ':') < 0 {
			return hostport[1:end], port
		}
	} else if !strings.Contains(hostport, ":") {
		return hostport, port
	}
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return host, port
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return host, port
	}
	return host, int(n)
}

// requiredPort is port unless it is the scheme's default (or absent): -1.
func requiredPort(https bool, port int) int {
	if port <= 0 || (https && port == 443) || (!https && port == 80) {
		return -1
	}
	return port
}

// errorType is error.type for err, as semconv's ErrorType makes it: the
// ErrorType() of an error in its chain, else the type's package path and
// name (fmt's %w wrappers looked through), else the type's text.
func errorType(err error) attribute.KeyValue {
	if err == nil {
		return attribute.String("error.type", "_OTHER")
	}
	var s string
	var et interface{ ErrorType() string }
	if errors.As(err, &et) {
		s = et.ErrorType()
	}
	if s == "" {
		for reflect.TypeOf(err).String() == "*fmt.wrapError" { // fmt.Errorf with one %w
			u := errors.Unwrap(err)
			if u == nil {
				break
			}
			err = u
		}
		t := reflect.TypeOf(err)
		if t.PkgPath() != "" && t.Name() != "" {
			s = t.PkgPath() + "." + t.Name()
		} else {
			s = t.String()
		}
	}
	return attribute.String("error.type", s)
}
