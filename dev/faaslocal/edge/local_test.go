package edge

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const localDoc = `
_format_version: "3.0"
services:
  - name: gateway
    url: http://gateway:8080/function
    routes:
      - name: all
        paths: [/]
        strip_path: false
  - name: slow
    url: http://gateway:8080/function
    read_timeout: 200
    routes:
      - name: slow
        paths: [/slow]
        strip_path: false
plugins:
  - name: correlation-id
    config: {header_name: X-Correlation-ID, generator: uuid, echo_downstream: true}
  - name: response-transformer
    config: {add: {headers: ["X-Content-Type-Options:nosniff"]}}
`

// gwSeen is what the gateway's handler saw of a request.
type gwSeen struct {
	Method, URI, Host, Proto string
	ContentLength            int64
	TransferEncoding         []string
	Header                   http.Header
	Body                     string
	BodyErr                  bool
}

// fakeGateway records what it sees by X-Test-Case and answers by path.
type fakeGateway struct {
	mu   sync.Mutex
	seen map[string]gwSeen
}

func (g *fakeGateway) get(name string) gwSeen {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seen[name]
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	h := r.Header.Clone()
	g.mu.Lock()
	g.seen[r.Header.Get("X-Test-Case")] = gwSeen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Proto: r.Proto,
		ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding, Header: h, Body: string(body), BodyErr: err != nil}
	g.mu.Unlock()
	rest := strings.TrimPrefix(r.URL.Path, "/function")
	switch {
	case strings.HasPrefix(rest, "/echo"):
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprintf(w, "%s %s %q", r.Method, r.URL.RequestURI(), body)
	case rest == "/big":
		_, _ = w.Write(bytes.Repeat([]byte("b"), 5000))
	case rest == "/exact":
		_, _ = w.Write(bytes.Repeat([]byte("e"), bufferBeforeChunking))
	case rest == "/cl":
		w.Header().Set("Content-Length", "3000")
		_, _ = w.Write(bytes.Repeat([]byte("c"), 3000))
	case rest == "/stream":
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = io.WriteString(w, "{\"n\":1}\n")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "{\"n\":2}\n")
	case rest == "/nocontent":
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNoContent)
	case rest == "/notmodified":
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Length", "12")
		w.WriteHeader(http.StatusNotModified)
	case rest == "/teapot":
		http.Error(w, "no coffee", http.StatusTeapot)
	case rest == "/empty":
		w.WriteHeader(http.StatusAccepted)
	case rest == "/html":
		_, _ = io.WriteString(w, "<html><body>hi</body></html>")
	case rest == "/late-header":
		w.WriteHeader(http.StatusCreated)
		w.Header().Set("X-Too-Late", "1")
		_, _ = io.WriteString(w, "created")
	case rest == "/gzip":
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			_, _ = io.WriteString(w, "plain")
			return
		}
		w.Header().Set("Content-Type", "text/plain") // else the edge's own server may sniff one, or not (a race of ReverseProxy's first flush over TCP)
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, "zipped answer")
		_ = zw.Close()
	case rest == "/gzip-stream":
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			_, _ = io.WriteString(w, "plain")
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, "first part, ")
		_ = zw.Flush()
		w.(http.Flusher).Flush()
		for i := range 300 {
			_, _ = fmt.Fprintf(zw, "%d:%x ", i, i*7919)
		}
		_ = zw.Close()
	case rest == "/over":
		w.Header().Set("Content-Length", "3")
		_, _ = io.WriteString(w, "toolong")
	case rest == "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
	case rest == "/hop":
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "gone")
		w.Header().Set("Keep-Alive", "timeout=5")
		_, _ = io.WriteString(w, "hop")
	case rest == "/abort":
		panic(http.ErrAbortHandler)
	case rest == "/abort-after":
		_, _ = io.WriteString(w, "half")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case rest == "/short":
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "short")
	case rest == "/short-stream":
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "short")
		w.(http.Flusher).Flush()
	case rest == "/slow-writes": // header and a few bytes, never enough to answer before read_timeout
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				_, _ = io.WriteString(w, "late")
				w.Header().Set("X-Late", "1")
				return
			case <-tick.C:
				_, _ = io.WriteString(w, "x")
			}
		}
	case strings.HasPrefix(rest, "/slow"):
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// answer is what the client saw.
type answer struct {
	DoErr            bool
	Status           int
	Header           http.Header
	ContentLength    int64
	TransferEncoding []string
	Body             string
	BodyErr          bool
}

type localCase struct {
	name, method, path string
	header             map[string]string
	body               string
	chunked            bool
}

var localCases = []localCase{
	{name: "get", method: "GET", path: "/echo/a?b=c&d=%20e"},
	{name: "get-force-query", method: "GET", path: "/echo/q?"},
	{name: "get-escaped", method: "GET", path: "/echo/a%2Fb%20c"},
	{name: "post", method: "POST", path: "/echo/p", body: `{"x":1}`, header: map[string]string{"Content-Type": "application/json"}},
	{name: "post-empty", method: "POST", path: "/echo/p"},
	{name: "put-chunked", method: "PUT", path: "/echo/c", body: "chunked body", chunked: true},
	{name: "delete", method: "DELETE", path: "/echo/d"},
	{name: "options", method: "OPTIONS", path: "/echo/o"},
	{name: "head", method: "HEAD", path: "/echo/h"},
	{name: "head-cl", method: "HEAD", path: "/cl"},
	{name: "patch", method: "PATCH", path: "/echo/x", body: "p"},
	{name: "headers", method: "GET", path: "/echo/h", header: map[string]string{"User-Agent": "shop-test/1",
		"Accept-Encoding": "br", "Connection": "X-Drop", "X-Drop": "1", "Te": "trailers", "X-Multi": "a",
		"X-Forwarded-For": "192.0.2.1", "Authorization": "Bearer t", "Range": "bytes=0-1", "Expect": ""}},
	{name: "no-user-agent", method: "GET", path: "/echo/u", header: map[string]string{"User-Agent": ""}},
	{name: "big", method: "GET", path: "/big"},
	{name: "exact", method: "GET", path: "/exact"},
	{name: "cl", method: "GET", path: "/cl"},
	{name: "stream", method: "GET", path: "/stream"},
	{name: "nocontent", method: "GET", path: "/nocontent"},
	{name: "notmodified", method: "GET", path: "/notmodified"},
	{name: "teapot", method: "GET", path: "/teapot"},
	{name: "empty", method: "POST", path: "/empty", body: "x"},
	{name: "html", method: "GET", path: "/html"},
	{name: "late-header", method: "POST", path: "/late-header"},
	{name: "gzip", method: "GET", path: "/gzip"},
	{name: "gzip-asked", method: "GET", path: "/gzip", header: map[string]string{"Accept-Encoding": "gzip"}},
	{name: "gzip-stream", method: "GET", path: "/gzip-stream"},
	{name: "over", method: "GET", path: "/over"},
	{name: "sse", method: "GET", path: "/sse"},
	{name: "head-big", method: "HEAD", path: "/big"},
	{name: "query-semicolon", method: "GET", path: "/echo/s?a=1;b=2&c=%zz"},
	{name: "upgrade-without-connection", method: "GET", path: "/echo/u", header: map[string]string{"Upgrade": "h2c"}},
	{name: "te-only", method: "GET", path: "/echo/t", header: map[string]string{"Te": "gzip, trailers"}},
	{name: "forwarded", method: "GET", path: "/echo/f", header: map[string]string{"Forwarded": "for=192.0.2.9",
		"X-Forwarded-Host": "elsewhere", "X-Forwarded-Proto": "https", "Proxy-Authorization": "Basic x"}},
	{name: "hop", method: "GET", path: "/hop"},
	{name: "abort", method: "GET", path: "/abort"},
	{name: "abort-after", method: "GET", path: "/abort-after"},
	{name: "short", method: "GET", path: "/short"},
	{name: "short-stream", method: "GET", path: "/short-stream"},
	{name: "slow", method: "GET", path: "/slow"},
	{name: "slow-writes", method: "GET", path: "/slow-writes"},
	{name: "not-found", method: "GET", path: "/nothing"},
}

// send makes c's request to edge with a client that adds nothing of its
// own (no Accept-Encoding), and returns what it saw.
func (c localCase) send(t *testing.T, client *http.Client, edge string) answer {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
		if c.chunked {
			body = io.MultiReader(body) // length unknown: chunked
		}
	}
	req, err := http.NewRequest(c.method, edge+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "edge.test" // the same X-Forwarded-Host through both edges
	req.Header.Set("X-Test-Case", c.name)
	req.Header.Set("X-Correlation-ID", "fixed-"+c.name)
	for k, v := range c.header {
		req.Header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	res, err := client.Do(req)
	if err != nil {
		return answer{DoErr: true}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	res.Header.Del("Date")
	if len(b) > 64 {
		b = append(b[:32:32], fmt.Sprintf("…(%d bytes)", len(b))...)
	}
	return answer{Status: res.StatusCode, Header: res.Header, ContentLength: res.ContentLength,
		TransferEncoding: res.TransferEncoding, Body: string(b), BodyErr: err != nil}
}

// TestLocalUpstreamAnswersAsTCP sends every request of a table through two
// edges in front of the same gateway handler, one through
// httputil.ReverseProxy over a loopback connection (as with a remote
// gateway), one calling the handler directly (localProxy), and requires the
// same answers to the client and the same requests at the gateway.
func TestLocalUpstreamAnswersAsTCP(t *testing.T) {
	decl, err := Parse([]byte(localDoc))
	if err != nil {
		t.Fatal(err)
	}
	tcpGW, localGW := &fakeGateway{seen: map[string]gwSeen{}}, &fakeGateway{seen: map[string]gwSeen{}}
	gwSrv := httptest.NewServer(tcpGW)
	defer gwSrv.Close()
	addr := strings.TrimPrefix(gwSrv.URL, "http://")
	edges := map[string]*httptest.Server{}
	for name, local := range map[string]map[string]http.Handler{"tcp": nil, "local": {"gateway:8080": localGW}} {
		e, err := New(decl, Options{Upstreams: map[string]string{"gateway:8080": addr}, Local: local})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(e)
		defer srv.Close()
		edges[name] = srv
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, c := range localCases {
		overTCP := c.send(t, client, edges["tcp"].URL)
		inProcess := c.send(t, client, edges["local"].URL)
		if !reflect.DeepEqual(overTCP, inProcess) {
			t.Errorf("%s: the client saw\n over TCP    %+v\n in process  %+v", c.name, overTCP, inProcess)
		}
		a, b := tcpGW.get(c.name), localGW.get(c.name)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: the gateway saw\n over TCP    %+v\n in process  %+v", c.name, a, b)
		}
	}
}

// TestProxyReusesCopyBuffers: an answer from the in-process gateway costs
// no 32 KiB copy buffer per request (httputil.ReverseProxy without a
// BufferPool allocated one for every request: a fifth of the edge's
// allocated bytes in the warm-read benchmark's profile; the TCP path still
// copies through the pooled copyBuffers).
func TestProxyReusesCopyBuffers(t *testing.T) {
	decl, err := Parse([]byte(localDoc))
	if err != nil {
		t.Fatal(err)
	}
	gw := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"p1","name":"a product"}`)
	})
	e, err := New(decl, Options{Upstreams: map[string]string{"gateway:8080": "127.0.0.1:1"},
		Local: map[string]http.Handler{"gateway:8080": gw}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	serve := func() {
		req := httptest.NewRequest(http.MethodGet, "/echo/p1", nil)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}
	for range 10 {
		serve()
	}
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		serve()
	}
	runtime.ReadMemStats(&after)
	perRequest := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per proxied request", perRequest)
	if perRequest >= 32<<10 {
		t.Errorf("%d bytes allocated per proxied request: the copy buffer is not reused", perRequest)
	}
}

// BenchmarkEdgeHop is the CPU (whole process: client, edge, gateway
// stand-in) of a warm read through the project's Kong file, with the edge
// reaching the gateway over loopback TCP (tcp, as before, and as with a
// remote gateway) or in process (in-process), against the same call made to
// the gateway stand-in directly (gateway):
//
//	go test -run '^$' -bench EdgeHop -benchmem -benchtime 20000x ./dev/faaslocal/edge
func BenchmarkEdgeHop(b *testing.B) {
	gw := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"0b5e3c1a-8f0e-4a43-9a57-6f1f4f1d2b11","name":"Trail shoe","price_cents":8900,"stock":12}`)
	})
	gwSrv := httptest.NewServer(gw)
	defer gwSrv.Close()
	decl, err := Load("../../../gateway/kong.yml")
	if err != nil {
		b.Fatal(err)
	}
	const path = "/api/v1/products/0b5e3c1a-8f0e-4a43-9a57-6f1f4f1d2b11"
	upstreams := map[string]string{"gateway:8080": strings.TrimPrefix(gwSrv.URL, "http://")}
	for _, target := range []struct {
		name  string
		local map[string]http.Handler
	}{
		{"gateway", nil},
		{"tcp", nil},
		{"in-process", map[string]http.Handler{"gateway:8080": gw}},
	} {
		b.Run(target.name, func(b *testing.B) {
			url := gwSrv.URL + "/function/get-product" + path
			if target.name != "gateway" {
				e, err := New(decl, Options{Upstreams: upstreams, Local: target.local, Getenv: testEnv})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				srv := httptest.NewServer(e)
				defer srv.Close()
				url = srv.URL + path
			}
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			call := func() {
				res, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
			call()
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				call()
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestUpgradeGoesOverTCP: an Upgrade (websocket) request, which needs a
// connection to hijack, goes to the gateway's listener even when the gateway
// is given in process; every other request goes to the handler.
func TestUpgradeGoesOverTCP(t *testing.T) {
	decl, err := Parse([]byte(localDoc))
	if err != nil {
		t.Fatal(err)
	}
	answer := func(by string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, by+" "+r.Header.Get("Upgrade"))
		})
	}
	gwSrv := httptest.NewServer(answer("tcp"))
	defer gwSrv.Close()
	e, err := New(decl, Options{Upstreams: map[string]string{"gateway:8080": strings.TrimPrefix(gwSrv.URL, "http://")},
		Local: map[string]http.Handler{"gateway:8080": answer("local")}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, c := range []struct {
		header map[string]string
		want   string
	}{
		{map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, "tcp websocket"},
		{map[string]string{"Connection": "keep-alive, upgrade", "Upgrade": "websocket"}, "tcp websocket"},
		{map[string]string{"Upgrade": "websocket"}, "local "}, // no Connection: Upgrade, no upgrade
		{nil, "local "},
	} {
		req := httptest.NewRequest(http.MethodGet, "/echo/ws", nil)
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if got := w.Body.String(); got != c.want {
			t.Errorf("%v: answered %q, want %q", c.header, got, c.want)
		}
	}
}
