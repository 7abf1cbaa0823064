package edge

import (
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
)

// productBody is a warm get-product answer's size and shape.
const productBody = `{"id":"0b5e3c1a-8f0e-4a43-9a57-6f1f4f1d2b11","name":"Trail shoe","price_cents":8900,"stock":12}`

// productPath is a get-product route of gateway/kong.yml.
const productPath = "/api/v1/products/0b5e3c1a-8f0e-4a43-9a57-6f1f4f1d2b11"

// gatewayStandIn answers every call as the gateway answers a warm read,
// with the headers the gateway's forwarder passes on from fnserve.
var gatewayStandIn = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Etag", `"0b5e3c1a-8f0e-4a43-9a57-6f1f4f1d2b11-3"`)
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Type", "application/json")
	h.Set("X-Duration-Seconds", "0.000412")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, productBody)
})

// sinkWriter is a ResponseWriter that keeps nothing between requests but
// its header map (cleared by reset), so what a request allocates in the edge
// is the edge's own.
type sinkWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *sinkWriter) Header() http.Header { return w.h }
func (w *sinkWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *sinkWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}
func (w *sinkWriter) reset() { clear(w.h); w.status, w.n = 0, 0 }

// edgeRequest is a warm read as the edge's server hands it over: the
// headers Go's client sends, a peer address, no body.
func edgeRequest() *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:8000"+productPath, nil)
	r.RequestURI = productPath
	r.URL.Scheme, r.URL.Host = "", ""
	r.Host = "127.0.0.1:8000"
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "Go-http-client/1.1")
	r.Header.Set("Accept-Encoding", "gzip")
	r.Body = http.NoBody
	return r
}

// projectEdge is the edge of gateway/kong.yml handing requests to gw in
// process.
func projectEdge(tb testing.TB, gw http.Handler) *Edge {
	tb.Helper()
	decl, err := Load("../../../gateway/kong.yml")
	if err != nil {
		tb.Fatal(err)
	}
	e, err := New(decl, Options{Upstreams: map[string]string{"gateway:8080": "127.0.0.1:1"},
		Local: map[string]http.Handler{"gateway:8080": gw}, Getenv: testEnv})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}

// BenchmarkEdgeServe is the edge's own work for a warm read through the
// project's Kong file, without sockets: plugins, routing and the in-process
// hand-off to a gateway stand-in.
//
//	go test -run '^$' -bench EdgeServe -benchmem -count 5 ./dev/faaslocal/edge
func BenchmarkEdgeServe(b *testing.B) {
	e := projectEdge(b, gatewayStandIn)
	w, r := &sinkWriter{h: http.Header{}}, edgeRequest()
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		e.ServeHTTP(w, r) // the edge works on a clone: r can be served again
		if w.status != http.StatusOK || w.n != len(productBody) {
			b.Fatalf("status %d, %d bytes", w.status, w.n)
		}
	}
}

// TestWarmReadAllocations bounds what the edge allocates for a warm read
// through the project's Kong file with the gateway in process (the gateway
// stand-in's own header values included): every allocation here is paid on
// each public request, beside the copies net/http makes.
func TestWarmReadAllocations(t *testing.T) {
	e := projectEdge(t, gatewayStandIn)
	w, r := &sinkWriter{h: http.Header{}}, edgeRequest()
	serve := func() {
		w.reset()
		e.ServeHTTP(w, r)
	}
	serve()
	if w.status != http.StatusOK || w.n != len(productBody) {
		t.Fatalf("status %d, %d bytes", w.status, w.n)
	}
	// 79 before the plugins' per-request closures, regexp and second random
	// read, the metric's label look-up, the third request header map, the
	// timer and the context value nothing read went; 62 before the edge
	// called the in-process gateway directly (localProxy) instead of through
	// httputil.ReverseProxy and an http.RoundTripper (its request clone, the
	// *http.Response, the copies of the answer's header and body).
	const most = 40
	allocs := testing.AllocsPerRun(200, serve)
	t.Logf("%.0f allocations per warm read", allocs)
	if allocs > most && !raceEnabled {
		t.Errorf("%.0f allocations per warm read, want at most %d", allocs, most)
	}
}

// TestNewTraceparent: a new traceparent is valid and sampled, with a new
// trace id and span id every time.
func TestNewTraceparent(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tp := newTraceparent()
		m := traceparentRE.FindStringSubmatch(tp)
		if m == nil || m[3] != "01" || m[1] == strings.Repeat("0", 32) || seen[m[1]] || seen[m[2]] {
			t.Fatalf("new traceparent %q", tp)
		}
		seen[m[1]], seen[m[2]] = true, true
	}
}

// TestInProcessRequestsReuseHandlerGoroutines: a request handed to the
// gateway in process runs on the edge's own goroutine (whose stack has grown
// already), not on a new one per request.
func TestInProcessRequestsReuseHandlerGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	e := projectEdge(t, gatewayStandIn)
	w, r := &sinkWriter{h: http.Header{}}, edgeRequest()
	serve := func() {
		w.reset()
		e.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			t.Fatalf("status %d", w.status)
		}
	}
	serve()
	created := func() uint64 {
		s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	const n = 100
	before := created()
	for range n {
		serve()
	}
	// A few may be other tests' leftovers (a timer's AfterFunc firing); one
	// per request is what a new goroutine per request makes.
	if c := created() - before; c > 10 {
		t.Errorf("%d goroutines created for %d requests, want the edge's own", c, n)
	}
}
