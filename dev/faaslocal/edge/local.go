package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// localTransport hands the edge's proxied request to an http.Handler of
// the same process (the local runtime's gateway API) instead of writing it
// to a loopback connection that a net/http server of the same process
// reads back. What the handler sees and what the edge's reverse proxy gets
// back are what the two ends of that connection would have made of it
// (TestLocalUpstreamAnswersAsTCP compares both on a table of requests):
//
//   - the request as net/http's server parses what net/http's Transport
//     writes: Host from the request, Content-Length as the Transport sends
//     it, the Transport's User-Agent and Accept-Encoding rules (an answer
//     gzipped because of the Accept-Encoding the Transport added is
//     decompressed again), no body as http.NoBody, an unknown length as
//     chunked, a context cancelled when the handler returns or the edge
//     gives up, and no context values of the edge's;
//   - the answer as the Transport parses what the server writes: the header
//     as it was at WriteHeader, Content-Length computed when the handler
//     finishes within the server's 2 KiB buffer, else streamed (chunked)
//     with every Flush going through at once, Content-Type sniffed when
//     unset, no body for HEAD, 204 and 304;
//   - errors as the Transport reports them: a handler that aborts before
//     its answer (panic, http.ErrAbortHandler included) is an error (the
//     edge's 502), one that aborts after it cuts the body short, a read
//     timeout is a net.Error timeout (the edge's 504);
//   - an Upgrade (websocket) request, which needs a connection to hijack,
//     goes over fallback, the TCP transport.
//
// Trailers are not carried (the gateway sends none).
type localTransport struct {
	handler       http.Handler
	fallback      http.RoundTripper
	headerTimeout time.Duration // the service's read_timeout; 0: none
	log           *slog.Logger
	handlers      *handlerPool // the edge's; nil: a new goroutine per request
}

// handlerPool runs in-process requests on goroutines kept from earlier
// ones. A new goroutine per request starts on a small stack that the
// gateway's handler and its transport grow by copying (runtime.newstack and
// copystack were ~3 % of the benchmark process's CPU on warm reads through
// the edge, newproc ~1 %); a kept one has grown already. A request that
// finds no idle goroutine starts one, which stays for the next until it has
// been idle for handlerIdle or the edge closes.
type handlerPool struct {
	jobs chan localJob // unbuffered: a send succeeds only to an idle goroutine
	quit chan struct{}
	once sync.Once
}

// localJob is one request for the pool: localTransport.serve's arguments.
type localJob struct {
	t    *localTransport
	w    *localWriter
	in   *http.Request
	body io.ReadCloser
}

// handlerIdle is how long a kept goroutine waits for another request.
const handlerIdle = 30 * time.Second

func newHandlerPool() *handlerPool {
	return &handlerPool{jobs: make(chan localJob), quit: make(chan struct{})}
}

func (p *handlerPool) run(j localJob) {
	select {
	case p.jobs <- j:
	default:
		go p.work(j)
	}
}

func (p *handlerPool) work(j localJob) {
	idle := time.NewTimer(handlerIdle)
	defer idle.Stop()
	for {
		j.t.serve(j.w, j.in, j.body) // recovers the handler's panics
		j = localJob{}               // holds nothing of the request while idle
		idle.Reset(handlerIdle)
		select {
		case j = <-p.jobs:
		case <-idle.C:
			return
		case <-p.quit:
			return
		}
	}
}

// close ends the idle goroutines; a later request still runs, on a
// goroutine of its own.
func (p *handlerPool) close() { p.once.Do(func() { close(p.quit) }) }

// localRemoteAddr is the RemoteAddr the handler sees: the loopback peer
// the gateway would see, without a port (there is no connection). The
// edge always sets X-Forwarded-For, which the gateway prefers.
const localRemoteAddr = "127.0.0.1:0"

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

func (t *localTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	if out.Header.Get("Upgrade") != "" {
		return t.fallback.RoundTrip(out)
	}
	ctx, cancel := context.WithCancel(valuelessContext{out.Context()})
	in, gzipped := serverRequest(out, ctx)
	w := &localWriter{req: in, header: http.Header{}, ready: make(chan struct{}), cancel: cancel, gzipped: gzipped,
		declared: -1}
	if t.handlers != nil {
		t.handlers.run(localJob{t: t, w: w, in: in, body: out.Body})
	} else {
		go t.serve(w, in, out.Body)
	}

	var timeout <-chan time.Time
	if t.headerTimeout > 0 {
		timer := getTimer(t.headerTimeout)
		defer putTimer(timer)
		timeout = timer.C
	}
	select {
	case <-w.ready:
	case <-timeout:
		w.abandon()
		return nil, localTimeout{}
	case <-out.Context().Done():
		w.abandon()
		return nil, out.Context().Err()
	}
	if w.err != nil {
		return nil, w.err
	}
	w.res.Request = out
	return w.res, nil
}

// timers are the read_timeout timers of past requests: a request would
// otherwise allocate one (and its channel) for a wait that almost never
// fires. Since Go 1.23 a stopped timer's channel holds no stale value, so
// Reset needs no draining.
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}

func (t *localTransport) serve(w *localWriter, in *http.Request, body io.ReadCloser) {
	defer func() {
		if body != nil {
			_ = body.Close() // the RoundTripper closes the request body, as the Transport does
		}
		w.cancel() // as the server cancels a request's context when its handler returns
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				t.log.Debug("edge: in-process upstream panicked", "path", in.URL.Path, "panic", v)
			}
			w.finish(errLocalAborted)
			return
		}
		w.finish(nil)
	}()
	t.handler.ServeHTTP(w, in)
}

// valuelessContext is its parent's deadline and cancellation without its
// values: the handler is another server's, which would not see the edge's
// context values (spans, identity, routed path).
type valuelessContext struct{ context.Context }

func (valuelessContext) Value(any) any { return nil }

// AfterFunc lets context.WithCancel hook on the parent without a goroutine.
func (c valuelessContext) AfterFunc(f func()) func() bool { return context.AfterFunc(c.Context, f) }

// serverRequest is the request a net/http server would read from what the
// Transport writes for out; gzipped reports that the Transport would have
// asked for gzip on its own (and so decompressed the answer).
//
// The handler's request takes over out.Header, which the edge's reverse
// proxy cloned for this request alone and does not read after RoundTrip
// (httputil.ReverseProxy hands outreq only to the error handler, which reads
// no header): copying it would be the request's third header map.
func serverRequest(out *http.Request, ctx context.Context) (*http.Request, bool) {
	u := &url.URL{Path: out.URL.Path, RawQuery: out.URL.RawQuery, ForceQuery: out.URL.ForceQuery}
	if u.Path == "" {
		u.Path = "/"
	}
	host := out.Host
	if host == "" {
		host = out.URL.Host
	}
	h := out.Header
	if h == nil {
		h = make(http.Header, 2)
	}
	in := &http.Request{Method: out.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Host: host, RemoteAddr: localRemoteAddr, RequestURI: u.RequestURI()}
	ua := "Go-http-client/1.1"
	if _, ok := h["User-Agent"]; ok {
		ua = h.Get("User-Agent")
	}
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
		in.Header["User-Agent"] = []string{ua}
	}
	gzipped := false
	if in.Header.Get("Accept-Encoding") == "" && in.Header.Get("Range") == "" && out.Method != http.MethodHead {
		in.Header["Accept-Encoding"] = []string{"gzip"}
		gzipped = true
	}
	switch {
	case out.Body == nil || out.Body == http.NoBody:
		in.Body = http.NoBody
		if out.Method == http.MethodPost || out.Method == http.MethodPut || out.Method == http.MethodPatch { // the Transport's rule
			in.Header["Content-Length"] = []string{"0"}
		}
	case out.ContentLength > 0:
		in.ContentLength = out.ContentLength
		in.Body = io.NopCloser(io.LimitReader(out.Body, out.ContentLength))
		in.Header["Content-Length"] = []string{strconv.FormatInt(out.ContentLength, 10)}
	default: // unknown length: chunked
		in.ContentLength = -1
		in.TransferEncoding = []string{"chunked"}
		in.Body = io.NopCloser(out.Body)
	}
	return in.WithContext(ctx), gzipped
}

// localWriter is the handler's http.ResponseWriter: it buffers up to
// bufferBeforeChunking bytes, then makes the answer (res) at the first of
// the handler's return, its Flush and a write past the buffer; what comes
// after goes through a pipe to the reverse proxy.
type localWriter struct {
	req     *http.Request
	header  http.Header
	cancel  context.CancelFunc
	gzipped bool

	status   int         // 0 until WriteHeader
	snap     http.Header // the header at WriteHeader; the response's once made
	buf      []byte
	written  int64
	declared int64 // the answer's Content-Length, -1 when none

	ready chan struct{} // closed when res or err is set
	res   *http.Response
	err   error

	mu        sync.Mutex
	pw        *io.PipeWriter // after the answer was made before the handler returned
	abandoned bool           // the edge gave up waiting
}

func (w *localWriter) Header() http.Header { return w.header }

func (w *localWriter) WriteHeader(code int) {
	if w.status != 0 || w.res != nil || w.err != nil {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		return // informational answers are not passed on (the Transport skips them)
	}
	w.status = code
	w.snap = w.header.Clone()
}

func (w *localWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.res == nil && w.err == nil {
		if len(w.buf)+len(p) <= bufferBeforeChunking {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		first := w.buf
		if len(first) < sniffLen {
			first = append(first[:len(first):len(first)], p[:min(len(p), sniffLen-len(first))]...)
		}
		w.answer(false, first)
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil // a HEAD answer's body is counted, not sent
	}
	return w.pipeWrite(p)
}

// sniffLen is what http.DetectContentType reads.
const sniffLen = 512

func (w *localWriter) pipeWrite(p []byte) (int, error) {
	w.mu.Lock()
	pw := w.pw
	w.mu.Unlock()
	if pw == nil {
		return 0, io.ErrClosedPipe
	}
	return pw.Write(p)
}

func (w *localWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.res == nil && w.err == nil {
		w.answer(false, w.buf)
	}
}

// answer makes the response from what the handler did so far; done is the
// handler's return (the whole body is in buf); first is the start of the
// body, which a Content-Type is sniffed from.
func (w *localWriter) answer(done bool, first []byte) {
	if w.status == 0 {
		w.status = http.StatusOK
		w.snap = w.header.Clone()
	}
	h := w.snap
	res := &http.Response{Status: statusLine(w.status), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, ContentLength: -1}
	head := w.req.Method == http.MethodHead
	_, haveType := h["Content-Type"]
	switch {
	case !bodyAllowed(w.status):
		if w.status == http.StatusNotModified {
			delete(h, "Content-Type")
		}
		delete(h, "Content-Length")
		delete(h, "Transfer-Encoding")
		res.ContentLength = 0
		if head {
			res.ContentLength = -1
		}
	default:
		if !haveType && h.Get("Content-Encoding") == "" && len(first) > 0 {
			h["Content-Type"] = []string{http.DetectContentType(first)}
		}
		if cl := h.Get("Content-Length"); cl != "" {
			if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
				res.ContentLength, w.declared = n, n
			}
		} else if done && (!head || w.written > 0) {
			h["Content-Length"] = []string{strconv.FormatInt(w.written, 10)}
			res.ContentLength = w.written
		} else if !done && !head {
			res.TransferEncoding = []string{"chunked"}
		}
	}
	switch {
	case head || !bodyAllowed(w.status):
		res.Body = http.NoBody
		if !head {
			res.ContentLength = 0
		}
	case done && res.ContentLength > w.written:
		// The server closes a connection whose answer fell short.
		res.Body = io.NopCloser(io.MultiReader(bytes.NewReader(w.buf), errReader{io.ErrUnexpectedEOF}))
	case done:
		res.Body = io.NopCloser(bytes.NewReader(w.buf))
	default:
		pr, pw := io.Pipe()
		w.mu.Lock()
		if w.abandoned { // nobody reads: later writes fail
			w.mu.Unlock()
			w.err = io.ErrClosedPipe
			close(w.ready)
			return
		}
		w.pw = pw
		w.mu.Unlock()
		res.Body = &localBody{Reader: io.MultiReader(bytes.NewReader(w.buf), pr), pr: pr, cancel: w.cancel}
		w.buf = nil
	}
	if w.gzipped && res.Body != http.NoBody && h.Get("Content-Encoding") == "gzip" {
		delete(h, "Content-Encoding")
		delete(h, "Content-Length")
		res.ContentLength, res.Uncompressed = -1, true
		res.Body = &gunzip{body: res.Body}
	}
	w.res = res
	close(w.ready)
}

// finish is the handler's return: abort is non-nil when it panicked.
func (w *localWriter) finish(abort error) {
	if w.res == nil && w.err == nil {
		if abort != nil {
			w.err = abort
			close(w.ready)
			return
		}
		w.answer(true, w.buf)
		return
	}
	w.mu.Lock()
	pw := w.pw
	w.mu.Unlock()
	if pw == nil {
		return
	}
	if abort == nil && w.written < w.declared {
		abort = io.ErrUnexpectedEOF // the server closes a connection whose answer fell short
	}
	_ = pw.CloseWithError(abort)
}

// abandon is the edge giving up on the answer (timeout, client gone): the
// handler's context is cancelled and its later writes fail.
func (w *localWriter) abandon() {
	w.cancel()
	w.mu.Lock()
	w.abandoned = true
	if w.pw != nil {
		_ = w.pw.CloseWithError(io.ErrClosedPipe)
	}
	w.mu.Unlock()
}

// statusLine is the Status the Transport reads for status ("200 OK"), without
// building the usual one anew.
func statusLine(status int) string {
	if status == http.StatusOK {
		return "200 OK"
	}
	return strconv.Itoa(status) + " " + http.StatusText(status)
}

func bodyAllowed(status int) bool {
	return (status < 100 || status > 199) && status != http.StatusNoContent && status != http.StatusNotModified
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// localBody is a streamed answer's body: closing it stops the handler's
// writes and cancels its context, as closing the connection would.
type localBody struct {
	io.Reader
	pr     *io.PipeReader
	cancel context.CancelFunc
}

func (b *localBody) Close() error {
	b.cancel()
	return b.pr.Close()
}

// gunzip decompresses on first read, as the Transport's gzip reader.
type gunzip struct {
	body io.ReadCloser
	zr   *gzip.Reader
	err  error
}

func (g *gunzip) Read(p []byte) (int, error) {
	if g.zr == nil && g.err == nil {
		g.zr, g.err = gzip.NewReader(g.body)
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.zr.Read(p)
}

func (g *gunzip) Close() error { return g.body.Close() }
