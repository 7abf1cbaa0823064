package provider

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// oneFunction is a function store holding one deployed function, "fn".
type oneFunction struct{ Functions }

func (oneFunction) Invoked(name string) bool { return name == "fn" }
func (oneFunction) Status(name string) (types.FunctionStatus, error) {
	return types.FunctionStatus{Name: name, Replicas: 1}, nil
}
func (oneFunction) Scale(string, uint64) error { return nil }

// fixedReplicas always picks the same address.
type fixedReplicas string

func (a fixedReplicas) Pick(context.Context, string) (string, error) { return string(a), nil }

// serveLoopback serves h on a loopback port until the test ends and returns host:port.
func serveLoopback(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// gateway serves the gateway API (Guard around Router, as the runtime
// mounts it) over replicas and returns its base URL.
func gateway(tb testing.TB, replicas Replicas) string {
	tb.Helper()
	h := New(Deps{Functions: oneFunction{}, Replicas: replicas, ResolveWait: time.Second})
	return "http://" + serveLoopback(tb, Guard(h.Router()))
}

// closingReplica is a replica that answers the first request of each
// connection with keep-alive, then closes the connection the moment the
// next request arrives on it, without answering: what a server does when it
// closes an idle connection (Shutdown, IdleTimeout) just as a client reuses it.
func closingReplica(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
				_, _ = br.Peek(1) // the next request: close without answering
			}()
		}
	}()
	return ln.Addr().String()
}

// TestProxyRetriesAReusedConnectionClosedByTheReplica: a call written on a
// kept-alive connection that the replica closes (issue 9) is sent again on a
// new connection under Go's rule: a POST with an Idempotency-Key (or
// X-Idempotency-Key) and a GET are retried and answer 200; a POST without a
// key is not (it may have run) and answers faas-provider's 500.
func TestProxyRetriesAReusedConnectionClosedByTheReplica(t *testing.T) {
	for _, tc := range []struct {
		name, method, key string
		want              int
	}{
		{"POST with Idempotency-Key", http.MethodPost, "Idempotency-Key", http.StatusOK},
		{"POST with X-Idempotency-Key", http.MethodPost, "X-Idempotency-Key", http.StatusOK},
		{"GET", http.MethodGet, "", http.StatusOK},
		{"POST without a key", http.MethodPost, "", http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := gateway(t, fixedReplicas(closingReplica(t)))
			c := &http.Client{Transport: &http.Transport{}}
			for i := range 5 {
				var body io.Reader
				if tc.method == http.MethodPost {
					body = strings.NewReader("call")
				}
				req, _ := http.NewRequest(tc.method, gw+"/function/fn", body)
				if tc.key != "" {
					req.Header.Set(tc.key, "call-"+strconv.Itoa(i))
				}
				res, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				_ = res.Body.Close()
				want := tc.want
				if i == 0 {
					want = http.StatusOK // a new connection: nothing to close under it
				}
				if res.StatusCode != want {
					t.Fatalf("call %d: %d %q, want %d", i, res.StatusCode, b, want)
				}
				if want == http.StatusInternalServerError {
					if got := res.Header.Get("X-OpenFaaS-Internal"); got != "proxy" || string(b) != "Can't reach service for: fn.\n" {
						t.Errorf("call %d: X-OpenFaaS-Internal %q, body %q, want faas-provider's 500", i, got, b)
					}
					return
				}
			}
		})
	}
}

// BenchmarkGatewayHop is one call through the gateway API (Guard, router,
// call headers, watchdog, forwarder) to a replica that answers a small JSON
// body, as a checkout hop does, and, for comparison, the same call straight
// to the replica. cpu-ns/op is the whole process's CPU time per call
// (client, gateway and replica), so gateway minus direct is the hop's cost.
func BenchmarkGatewayHop(b *testing.B) {
	replica := serveLoopback(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"0b5e3c1a-8f0e-4a43-9a57-6f1f4f1d2b11","status":"reserved","lines":3}`)
	}))
	gw := gateway(b, fixedReplicas(replica))
	body := `{"order_id":"0b5e3c1a-8f0e-4a43-9a57-6f1f4f1d2b11","lines":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}]}`
	for _, target := range []struct{ name, url string }{
		{"gateway", gw + "/function/fn/reserve"},
		{"direct", "http://" + replica + "/reserve"},
	} {
		b.Run(target.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			call := func() {
				req, _ := http.NewRequest(http.MethodPost, target.url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				res, err := c.Do(req)
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
