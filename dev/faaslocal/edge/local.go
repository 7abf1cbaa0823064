package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal/hopbyhop"
)

// localProxy hands a routed request to an http.Handler of the same process
// (the local runtime's gateway API) on the edge's own goroutine, instead of
// proxying it over a loopback connection that a net/http server of the same
// process reads back. It is the reverse proxy (proxyTo), net/http's
// Transport and the gateway's net/http server in one step: what the handler
// sees and what the client gets are what they would have over TCP
// (TestLocalUpstreamAnswersAsTCP compares both on a table of requests):
//
//   - the request as the gateway's server parses what the reverse proxy
//     sends: the query as the client sent it, hop-by-hop headers removed,
//     X-Forwarded-* set, Host as the route says, Content-Length as the
//     Transport sends it, the Transport's
//     User-Agent and Accept-Encoding rules (an answer gzipped because of the
//     Accept-Encoding the Transport added is decompressed again), no body as
//     http.NoBody, an unknown length as chunked, a context cancelled when the
//     handler returns or the edge gives up, and no context values of the
//     edge's;
//   - the answer as the reverse proxy passes on what the Transport parses:
//     the header as it was at WriteHeader less its hop-by-hop headers,
//     Content-Length computed when the handler finishes within the server's
//     2 KiB buffer, else streamed with every write flushed, Content-Type
//     sniffed when unset, no body for HEAD, 204 and 304;
//   - errors as the reverse proxy reports them: a handler that aborts before
//     its answer (panic, http.ErrAbortHandler included) is the edge's 502,
//     one that aborts after it (or falls short of its Content-Length) cuts
//     the client's answer, no answer within the service's read_timeout is
//     the edge's 504 (sent once the handler, whose context is cancelled,
//     returns);
//   - an Upgrade (websocket) request, which needs a connection to hijack,
//     goes to tcp, the reverse proxy over TCP.
//
// Trailers and 1xx answers are not carried (the gateway sends none).
type localProxy struct {
	rt            *route
	handler       http.Handler
	tcp           http.Handler  // the reverse proxy over TCP, for upgrades
	headerTimeout time.Duration // the service's read_timeout; 0: none
	fail          func(http.ResponseWriter, *http.Request, error)
	log           *slog.Logger
}

// bufferBeforeChunking is net/http's server buffer: an answer that fits
// and is complete when the handler returns gets a Content-Length.
const bufferBeforeChunking = 2048

var errLocalAborted = errors.New("the in-process upstream aborted the request before answering")

// localTimeout is the read_timeout error: a net.Error whose Timeout is
// true, as the Transport's "timeout awaiting response headers".
type localTimeout struct{}

func (localTimeout) Error() string   { return "in-process upstream: timeout awaiting response headers" }
func (localTimeout) Timeout() bool   { return true }
func (localTimeout) Temporary() bool { return true }

var _ net.Error = localTimeout{}

func (p *localProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if upgradeType(req.Header) != "" {
		p.tcp.ServeHTTP(w, req)
		return
	}
	ctx, cancel := context.WithCancel(valuelessContext{req.Context()})
	in, gzipped := p.request(req, ctx)
	lw := &localWriter{p: p, client: w, edgeReq: req, req: in, header: make(http.Header, 8), cancel: cancel,
		gzipped: gzipped, declared: -1}
	var watch *readWatch
	if p.headerTimeout > 0 {
		watch = startWatch(lw, p.headerTimeout)
	}
	aborted := p.serve(lw, in)
	cancel() // as the server cancels a request's context when its handler returns
	if watch != nil {
		watch.stop() // waits for a 504 being written
	}
	lw.finish(aborted)
}

// serve runs the handler; aborted reports that it panicked.
func (p *localProxy) serve(w *localWriter, in *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				p.log.Debug("edge: in-process upstream panicked", "path", in.URL.Path, "panic", v)
			}
			aborted = true
		}
	}()
	p.handler.ServeHTTP(w, in)
	return false
}

// readWatch answers 504 for a request whose handler has not answered within
// the service's read_timeout. Watches are pooled: a request would otherwise
// allocate a timer for a wait that almost never fires.
type readWatch struct {
	t  *time.Timer
	mu sync.Mutex
	w  *localWriter
}

var watches sync.Pool

func startWatch(w *localWriter, d time.Duration) *readWatch {
	rw, ok := watches.Get().(*readWatch)
	if !ok {
		rw = &readWatch{}
		rw.mu.Lock()
		rw.w = w
		rw.mu.Unlock()
		rw.t = time.AfterFunc(d, rw.fire)
		return rw
	}
	rw.mu.Lock()
	rw.w = w
	rw.mu.Unlock()
	rw.t.Reset(d)
	return rw
}

func (rw *readWatch) fire() {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.w != nil {
		rw.w.timeout()
	}
}

// stop returns once no 504 is being written; a watch whose timer fired (or
// is about to) is not reused.
func (rw *readWatch) stop() {
	stopped := rw.t.Stop()
	rw.mu.Lock()
	rw.w = nil
	rw.mu.Unlock()
	if stopped {
		watches.Put(rw)
	}
}

// valuelessContext is its parent's deadline and cancellation without its
// values: the handler is another server's, which would not see the edge's
// context values (spans, identity, routed path).
type valuelessContext struct{ context.Context }

func (valuelessContext) Value(any) any { return nil }

// AfterFunc lets context.WithCancel hook on the parent without a goroutine.
func (c valuelessContext) AfterFunc(f func()) func() bool { return context.AfterFunc(c.Context, f) }

// hasToken reports whether a comma-separated value of vs has token
// (case-insensitive), as httpguts.HeaderValuesContainsToken.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// upgradeType is the protocol an Upgrade request asks for ("" for none),
// as httputil.ReverseProxy reads it.
func upgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// request is, built once, the request the gateway's net/http server would
// read from what the reverse proxy's Transport writes for req (the edge's
// routed request); gzipped reports that the Transport would have asked for
// gzip on its own (and so decompressed the answer).
func (p *localProxy) request(req *http.Request, ctx context.Context) (*http.Request, bool) {
	// The reverse proxy's clone and rewrite.
	h := req.Header.Clone()
	if h == nil {
		h = make(http.Header, 4)
	}
	hopbyhop.Remove(h)
	if hasToken(req.Header["Te"], "trailers") {
		h["Te"] = []string{"trailers"}
	}
	delete(h, "Forwarded")
	vals := new([4]string) // the values set below, in one allocation
	if clientIP, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		vals[0] = clientIP
		h["X-Forwarded-For"] = vals[0:1:1]
	} else {
		delete(h, "X-Forwarded-For")
	}
	vals[1] = req.Host
	h["X-Forwarded-Host"] = vals[1:2:2]
	vals[2] = "http"
	if req.TLS != nil {
		vals[2] = "https"
	}
	h["X-Forwarded-Proto"] = vals[2:3:3]
	host := p.rt.upstream.Host
	if p.rt.preserve && req.Host != "" {
		host = req.Host
	}
	var body io.ReadCloser
	if req.ContentLength != 0 {
		body = req.Body
	}

	// What the Transport writes and the server reads back.
	u := &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery, ForceQuery: req.URL.ForceQuery}
	if u.Path == "" {
		u.Path = "/"
	}
	in := &http.Request{Method: req.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Host: host, RemoteAddr: localRemoteAddr, RequestURI: u.RequestURI()}
	ua := h.Get("User-Agent") // the reverse proxy sends none when the client sent none
	for k, v := range h {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer": // not written from the map
			delete(h, k)
			continue
		}
		if ck := textproto.CanonicalMIMEHeaderKey(k); ck != k {
			delete(h, k)
			h[ck] = append(h[ck], v...)
		}
	}
	if ua != "" {
		vals[3] = ua
		h["User-Agent"] = vals[3:4:4]
	}
	gzipped := false
	if h.Get("Accept-Encoding") == "" && h.Get("Range") == "" && req.Method != http.MethodHead {
		h["Accept-Encoding"] = []string{"gzip"}
		gzipped = true
	}
	switch {
	case body == nil || body == http.NoBody:
		in.Body = http.NoBody
		if req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch { // the Transport's rule
			h["Content-Length"] = []string{"0"}
		}
	case req.ContentLength > 0:
		in.ContentLength = req.ContentLength
		in.Body = io.NopCloser(io.LimitReader(body, req.ContentLength))
		h["Content-Length"] = []string{strconv.FormatInt(req.ContentLength, 10)}
	default: // unknown length: chunked
		in.ContentLength = -1
		in.TransferEncoding = []string{"chunked"}
		in.Body = io.NopCloser(body)
	}
	return in.WithContext(ctx), gzipped
}

// localRemoteAddr is the RemoteAddr the handler sees: the loopback peer
// the gateway would see, without a port (there is no connection). The
// edge always sets X-Forwarded-For, which the gateway prefers.
const localRemoteAddr = "127.0.0.1:0"

// localWriter is the handler's http.ResponseWriter: it buffers up to
// bufferBeforeChunking bytes, then answers the client (through the edge's
// plugins) at the first of the handler's return, its Flush and a write past
// the buffer; what comes after goes straight to the client.
type localWriter struct {
	p       *localProxy
	client  http.ResponseWriter
	edgeReq *http.Request // the edge's routed request
	req     *http.Request // the handler's
	header  http.Header
	cancel  context.CancelFunc
	gzipped bool

	status   int         // 0 until WriteHeader
	snap     http.Header // the header at WriteHeader
	buf      []byte
	written  int64 // by the handler, refused writes included (as the server counts)
	accepted int64 // by the handler, refused writes excluded
	limit    int64 // the Content-Length at WriteHeader, which the server holds writes to; -1 when none
	sent     int64 // body bytes passed to the client
	declared int64 // the answer's Content-Length, -1 when none
	streamed bool  // the reverse proxy would flush every write
	zipped   []byte
	unzip    bool  // the answer is gzip the Transport asked for: decompressed at the end
	cutErr   error // the client's answer cannot be completed

	mu       sync.Mutex
	answered bool // the client got the status
	timedOut bool // the read_timeout's 504 went instead
}

func (w *localWriter) Header() http.Header { return w.header }

func (w *localWriter) WriteHeader(code int) {
	if w.status != 0 || w.answered {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		return // informational answers are not passed on (the Transport skips them)
	}
	w.status = code
	w.snap = w.header.Clone()
	w.limit = -1
	if cl := w.snap.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.limit = n
		}
	}
}

func (w *localWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.limit >= 0 && w.written > w.limit {
		return 0, http.ErrContentLength // the server's rule: nothing of a write past the Content-Length goes
	}
	w.accepted += int64(len(p))
	if !w.answered {
		if len(w.buf)+len(p) <= bufferBeforeChunking {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		first := w.buf
		if len(first) < sniffLen {
			first = append(first[:len(first):len(first)], p[:min(len(p), sniffLen-len(first))]...)
		}
		if !w.answer(false, first) {
			return 0, io.ErrClosedPipe
		}
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil // a HEAD answer's body is counted, not sent
	}
	return w.pass(p)
}

// sniffLen is what http.DetectContentType reads.
const sniffLen = 512

// pass sends p to the client, as far as the declared Content-Length goes.
func (w *localWriter) pass(p []byte) (int, error) {
	if w.cutErr != nil {
		return 0, w.cutErr
	}
	if w.unzip {
		w.zipped = append(w.zipped, p...)
		return len(p), nil
	}
	var over error
	if w.declared >= 0 && w.sent+int64(len(p)) > w.declared {
		p, over = p[:w.declared-w.sent], http.ErrContentLength
	}
	n, err := w.client.Write(p)
	w.sent += int64(n)
	if err != nil {
		w.cutErr = err
		return n, err
	}
	if w.streamed {
		if err := http.NewResponseController(w.client).Flush(); err != nil {
			w.cutErr = err
			return n, err
		}
	}
	return n, over
}

func (w *localWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.answered {
		w.answer(false, w.buf)
	}
}

// answer passes the status, the header and the buffered body on to the
// client; done is the handler's return (the whole body is in buf); first
// is the start of the body, which a Content-Type is sniffed from. It
// reports false when the edge answered 504 instead.
func (w *localWriter) answer(done bool, first []byte) bool {
	w.mu.Lock()
	if w.timedOut {
		w.mu.Unlock()
		return false
	}
	w.answered = true
	w.mu.Unlock()
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	h := w.snap
	if h == nil {
		h = http.Header{}
	}
	head := w.req.Method == http.MethodHead
	contentLength := int64(-1) // as the Transport's response would have it
	_, haveType := h["Content-Type"]
	switch {
	case !bodyAllowed(w.status):
		if w.status == http.StatusNotModified {
			delete(h, "Content-Type")
		}
		delete(h, "Content-Length")
		if !head {
			contentLength = 0
		}
	default:
		if !haveType && h.Get("Content-Encoding") == "" && len(first) > 0 {
			h["Content-Type"] = []string{http.DetectContentType(first)}
		}
		if cl := h.Get("Content-Length"); cl != "" {
			if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
				contentLength, w.declared = n, n
			}
		} else if done && (!head || w.accepted > 0) {
			h["Content-Length"] = []string{strconv.FormatInt(w.accepted, 10)}
			contentLength = w.accepted
		}
	}
	if w.gzipped && !head && bodyAllowed(w.status) && h.Get("Content-Encoding") == "gzip" {
		delete(h, "Content-Encoding")
		delete(h, "Content-Length")
		contentLength, w.declared, w.unzip = -1, -1, true
	}
	// The reverse proxy's handling of the Transport's response.
	hopbyhop.Remove(h)
	w.streamed = contentLength == -1
	if ct := h.Get("Content-Type"); len(ct) >= len("text/event-stream") &&
		strings.EqualFold(ct[:len("text/event-stream")], "text/event-stream") {
		if ct, _, _ := mime.ParseMediaType(ct); ct == "text/event-stream" {
			w.streamed = true
		}
	}
	// The reverse proxy's copyHeader (Add of every value), without copying
	// the values: h is this answer's own.
	ch := w.client.Header()
	for k, vv := range h {
		if len(vv) == 0 {
			continue
		}
		k = textproto.CanonicalMIMEHeaderKey(k)
		if old, ok := ch[k]; ok {
			ch[k] = append(old, vv...)
		} else {
			ch[k] = vv[:len(vv):len(vv)]
		}
	}
	w.client.WriteHeader(w.status)
	if w.streamed {
		if err := http.NewResponseController(w.client).Flush(); err != nil {
			w.cutErr = err
		}
	}
	if !head && bodyAllowed(w.status) && len(w.buf) > 0 {
		_, _ = w.pass(w.buf)
	}
	w.buf = nil
	return true
}

// timeout is the read_timeout: without an answer yet, the client gets the
// edge's 504 and the handler's context is cancelled.
func (w *localWriter) timeout() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.answered {
		return
	}
	w.timedOut = true
	w.cancel()
	w.p.fail(w.client, w.edgeReq, localTimeout{})
}

// finish is the handler's return: aborted when it panicked.
func (w *localWriter) finish(aborted bool) {
	w.mu.Lock()
	timedOut, answered := w.timedOut, w.answered
	w.mu.Unlock()
	switch {
	case timedOut:
		return
	case !answered && aborted:
		w.mu.Lock()
		w.answered = true
		w.mu.Unlock()
		w.p.fail(w.client, w.edgeReq, errLocalAborted)
		return
	case !answered:
		w.answer(true, w.buf)
	}
	if w.unzip && w.cutErr == nil {
		w.unzip = false
		w.cutErr = w.unzipTo()
	}
	if aborted || w.cutErr != nil || (w.declared >= 0 && w.accepted < w.declared) {
		// The reverse proxy's copy failed: it aborts the client's answer.
		if w.edgeReq.Context().Value(http.ServerContextKey) != nil {
			panic(http.ErrAbortHandler)
		}
	}
}

// unzipTo decompresses the gzip answer the Transport asked for to the client.
func (w *localWriter) unzipTo() error {
	zr, err := gzip.NewReader(bytes.NewReader(w.zipped))
	if err != nil {
		return err
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := zr.Read(buf)
		if n > 0 {
			if _, werr := w.pass(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func bodyAllowed(status int) bool {
	return (status < 100 || status > 199) && status != http.StatusNoContent && status != http.StatusNotModified
}
