package provider

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/proxy"
	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/dev/faaslocal/hopbyhop"
)

const (
	// proxyTimeout bounds one synchronous invocation through the gateway.
	proxyTimeout = 5 * time.Minute
	// replayLimit is the largest request body the forwarder keeps to send
	// again; a bigger one streams to the replica and is never retried.
	replayLimit = 1 << 20
	// idleConnTimeout closes a connection to a replica unused this long:
	// longer than the gap between two hops of a call, shorter than
	// fnserve's IdleTimeout (2 minutes), so the gateway, not the replica,
	// normally ends an idle connection.
	idleConnTimeout = 90 * time.Second
	// internalHeader marks an answer the gateway wrote, not the function.
	internalHeader = "X-OpenFaaS-Internal"
)

// invocationCounter counts an invocation of a deployed function
// (functions.Store); false when it is not deployed.
type invocationCounter interface {
	Invoked(name string) bool
}

// proxyHandler is /function/{name}[/path]: the forwarder to an available
// replica (503 when none becomes available in time), behind a 404 for a
// function that is not deployed. The ".<namespace>" suffix go-sdk adds to
// the name is removed first.
func proxyHandler(fns invocationCounter, rs resolver, log *slog.Logger) http.HandlerFunc {
	forward := newForwarder(rs, log)
	return func(w http.ResponseWriter, r *http.Request) {
		vars := mux.Vars(r)
		name, ok := splitName(vars["name"])
		if !ok || !fns.Invoked(name) {
			http.Error(w, fmt.Sprintf("function %q not found", vars["name"]), http.StatusNotFound)
			return
		}
		if name != vars["name"] {
			vars = maps.Clone(vars)
			vars["name"] = name
			r = mux.SetURLVars(r, vars)
		}
		forward.ServeHTTP(w, r)
	}
}

// forwarder sends a call to a replica the way faas-provider's proxy
// (proxy.NewHandlerFunc) does behind the OpenFaaS gateway: the same methods
// (405 for others), the path after the function's name and the query, every
// request header but the hop-by-hop ones the gateway removes
// (hopbyhop.Remove), plus X-Forwarded-Host and X-Forwarded-For when absent, every answer header with
// faas-provider's Content-Type rule, 503 "No endpoints available for: <name>."
// without a replica and 500 "Can't reach service for: <name>." when the
// replica cannot be reached (both with X-OpenFaaS-Internal: proxy). Streams
// (SSE, NDJSON, websocket) still go through faas-provider's proxy.
//
// Unlike faas-provider's, it lets the Transport send a call again under Go's
// own rule (net/http.Transport: on a reused keep-alive connection, when
// nothing was written yet, or when the call is idempotent — GET, HEAD,
// OPTIONS, TRACE, or an Idempotency-Key / X-Idempotency-Key header — and
// failed before an answer) by making bodies up to replayLimit replayable
// (GetBody); faas-provider's streamed body made no POST replayable. A POST
// without a key that was written on a connection the replica then closed
// still answers 500, as the OpenFaaS gateway would: running it twice could
// do its work twice.
type forwarder struct {
	resolver  resolver
	transport *http.Transport
	streams   http.HandlerFunc
	log       *slog.Logger
}

func newForwarder(rs resolver, log *slog.Logger) *forwarder {
	return &forwarder{
		resolver: rs,
		transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: proxyTimeout}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   1024,
			IdleConnTimeout:       idleConnTimeout,
			ExpectContinueTimeout: 1500 * time.Millisecond,
		},
		streams: proxy.NewHandlerFunc(types.FaaSConfig{ReadTimeout: proxyTimeout}, rs, false),
		log:     log,
	}
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodGet, http.MethodOptions, http.MethodHead:
	default:
		if r.Body != nil {
			_ = r.Body.Close()
		}
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if isStream(r) {
		f.streams(w, r)
		return
	}
	if r.Body != nil {
		defer r.Body.Close()
	}
	vars := mux.Vars(r)
	name := vars["name"]
	if name == "" {
		w.Header().Add(internalHeader, "proxy")
		http.Error(w, "Provide function name in the request path", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > proxyTimeout { // the watchdog's is usually sooner
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, proxyTimeout)
		defer cancel()
	}

	body, err := readReplayable(r)
	if err != nil {
		f.unreachable(w, name, "", err)
		return
	}

	out := &http.Request{
		Method:     r.Method,
		URL:        &url.URL{Scheme: "http", Path: "/" + vars["params"], RawQuery: r.URL.RawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     r.Header.Clone(),
	}
	if out.Header == nil {
		out.Header = http.Header{}
	}
	hopbyhop.Remove(out.Header)
	if r.Host != "" && out.Header.Get("X-Forwarded-Host") == "" {
		out.Header["X-Forwarded-Host"] = []string{r.Host}
	}
	if out.Header.Get("X-Forwarded-For") == "" {
		out.Header["X-Forwarded-For"] = []string{r.RemoteAddr}
	}
	out = out.WithContext(ctx)

	addr, err := f.resolver.ResolveContext(ctx, name)
	if err != nil {
		f.log.Warn("resolver error: no endpoints", "function", name, "err", err)
		w.Header().Add(internalHeader, "proxy")
		http.Error(w, fmt.Sprintf("No endpoints available for: %s.", name), http.StatusServiceUnavailable)
		return
	}
	out.URL.Host = addr.Host
	out.Host = addr.Host
	out.Body, out.ContentLength, out.GetBody = body.request()
	res, err := f.transport.RoundTrip(out)
	if err != nil {
		f.unreachable(w, name, addr.Host, err)
		return
	}
	defer res.Body.Close()

	h := w.Header()
	for k, v := range res.Header {
		h[k] = v
	}
	// Hop-by-hop: a draining replica's "Connection: close" is about the
	// gateway's connection to it, not the caller's to the gateway.
	delete(h, "Connection")
	h.Set("Content-Type", contentType(r.Header, res.Header))
	w.WriteHeader(res.StatusCode)
	buf := copyBuffers.Get().(*[]byte)
	_, _ = io.CopyBuffer(w, res.Body, *buf)
	copyBuffers.Put(buf)
}

// unreachable answers the 500 of a call no replica answered.
func (f *forwarder) unreachable(w http.ResponseWriter, name, replica string, err error) {
	f.log.Warn("error with proxy request", "function", name, "replica", replica, "err", err)
	w.Header().Add(internalHeader, "proxy")
	http.Error(w, fmt.Sprintf("Can't reach service for: %s.", name), http.StatusInternalServerError)
}

// isStream reports whether r asks for an answer faas-provider streams
// through the standard library's reverse proxy: SSE, NDJSON or a websocket.
func isStream(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "websocket" {
		return true
	}
	accept := r.Header.Get("Accept")
	if accept == "" || accept == "application/json" || accept == "*/*" {
		return false
	}
	accept = strings.ToLower(accept)
	return strings.Contains(accept, "text/event-stream") || strings.Contains(accept, "application/x-ndjson")
}

// contentType is faas-provider's rule: the answer's Content-Type, else the
// request's, else text/plain.
func contentType(req, res http.Header) string {
	if ct := res.Get("Content-Type"); ct != "" {
		return ct
	}
	if ct := req.Get("Content-Type"); ct != "" {
		return ct
	}
	return "text/plain"
}

// copyBuffers are the buffers answers are copied through.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// replayable is a request body read ahead, up to replayLimit, so it can be
// sent twice; a longer one is its read part followed by the rest, once.
// Each attempt reads it through io.NopCloser(*bytes.Reader), which the
// Transport knows to be in memory: it writes the headers and a small body
// in one write instead of flushing the headers first.
type replayable struct {
	body []byte    // nil: no body
	rest io.Reader // the unread part of a long body, nil when all was read
}

// readReplayable reads r's body ahead, up to replayLimit bytes.
func readReplayable(r *http.Request) (replayable, error) {
	switch {
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
		return replayable{}, nil
	case r.ContentLength > replayLimit:
		return replayable{body: []byte{}, rest: r.Body}, nil
	case r.ContentLength > 0:
		b := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return replayable{}, fmt.Errorf("read request body: %w", err)
		}
		return replayable{body: b}, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, replayLimit+1))
	if err != nil {
		return replayable{}, fmt.Errorf("read request body: %w", err)
	}
	if len(b) > replayLimit {
		return replayable{body: b, rest: r.Body}, nil
	}
	return replayable{body: b}, nil
}

// request is the outgoing request's Body, ContentLength and GetBody: a
// body read ahead goes through an in-memory reader with its length and can
// be read again (GetBody), so the Transport may send it once more under Go's
// own rule; a longer one streams once (-1: length unknown, no GetBody).
func (p replayable) request() (io.ReadCloser, int64, func() (io.ReadCloser, error)) {
	switch {
	case p.body == nil:
		return nil, 0, nil
	case p.rest != nil:
		return io.NopCloser(io.MultiReader(bytes.NewReader(p.body), p.rest)), -1, nil
	}
	get := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(p.body)), nil }
	rc, _ := get()
	return rc, int64(len(p.body)), get
}

// resolver is faas-provider's BaseURLResolver over the supervisor: an
// available replica, round-robin, waiting up to wait for one.
type resolver struct {
	replicas Replicas
	wait     time.Duration
}

// Resolve implements proxy.BaseURLResolver (faas-provider's proxy, for
// streams, has no request context to give it).
func (rs resolver) Resolve(name string) (url.URL, error) {
	return rs.ResolveContext(context.Background(), name)
}

// ResolveContext is Resolve for a call: it waits for a replica no longer
// than the call's own context (its timeout, its client going away).
func (rs resolver) ResolveContext(ctx context.Context, name string) (url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, rs.wait)
	defer cancel()
	addr, err := rs.replicas.Pick(ctx, name)
	if err != nil {
		return url.URL{}, err
	}
	return url.URL{Scheme: "http", Host: addr}, nil
}
