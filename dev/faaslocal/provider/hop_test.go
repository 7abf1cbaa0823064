package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal/queue"
)

// hopByHop is a direct client's request header with every hop-by-hop field
// the OpenFaaS gateway removes before it forwards a call (its hopHeaders:
// Connection, Proxy-Connection, Keep-Alive, Proxy-Authenticate,
// Proxy-Authorization, Te, Trailer, Transfer-Encoding, Upgrade) and a field
// Connection names, which RFC 9110 (7.6.1) makes hop-by-hop too; X-Kept is
// an end-to-end field that must reach the function.
func hopByHop(h http.Header) {
	h.Set("Connection", "keep-alive, X-Hop-Named")
	h.Set("X-Hop-Named", "1")
	h.Set("Keep-Alive", "timeout=5")
	h.Set("Proxy-Connection", "keep-alive")
	h.Set("Proxy-Authenticate", "Basic")
	h.Set("Proxy-Authorization", "Basic eDp5")
	h.Set("Te", "trailers")
	h.Set("Trailer", "X-Checksum")
	h.Set("Upgrade", "h2c")
	h.Set("X-Kept", "yes")
}

// leftHopByHop names the hop-by-hop fields of hopByHop still in h, and
// whether the end-to-end X-Kept was lost.
func leftHopByHop(h http.Header) []string {
	var left []string
	for _, k := range []string{"Connection", "X-Hop-Named", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Upgrade"} {
		if _, ok := h[k]; ok {
			left = append(left, k)
		}
	}
	if h.Get("X-Kept") != "yes" {
		left = append(left, "X-Kept lost")
	}
	return left
}

// A direct client's hop-by-hop request fields (curl, faas-cli invoke, a
// connector: no Kong in front to remove them) never reach the function, as
// the OpenFaaS gateway removes them; until 2026-12-07 the forwarder passed
// every one on (its Proxy-Authorization, a credential meant for a proxy,
// included), while the end-to-end ones still arrive.
func TestTheForwarderDropsHopByHopRequestFields(t *testing.T) {
	seen := make(chan http.Header, 1)
	replica := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
	}))
	h := New(Deps{Functions: oneFunction{}, Replicas: fixedReplicas(replica), ResolveWait: time.Second})
	req := httptest.NewRequest(http.MethodPost, "/function/fn/x", strings.NewReader("hi"))
	hopByHop(req.Header)
	res := httptest.NewRecorder()
	h.Router().ServeHTTP(res, req)
	if res.Code != http.StatusOK {
		t.Fatalf("status %d %q", res.Code, res.Body)
	}
	if left := leftHopByHop(<-seen); len(left) != 0 {
		t.Errorf("the function received %v", left)
	}
}

// capturedQueue is a queue that keeps the calls it is given.
type capturedQueue struct{ calls []queue.Call }

func (q *capturedQueue) Enqueue(c queue.Call) error { q.calls = append(q.calls, c); return nil }

// deployedFn is a function store in which fn is deployed.
type deployedFn struct{ oneFunction }

func (deployedFn) Exists(name string) bool { return name == "fn" }

// An async call is journaled without the client's hop-by-hop fields: the
// queue's worker sends the journaled header to the replica as it is, and in
// OpenFaaS the queue-worker's call goes through the gateway, which removes
// them. Until 2026-12-07 they reached the function.
func TestAnAsyncCallIsQueuedWithoutHopByHopFields(t *testing.T) {
	q := &capturedQueue{}
	h := New(Deps{Functions: deployedFn{}, Queue: q})
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/async-function/fn/x", strings.NewReader("hi"))
	hopByHop(req.Header)
	res := httptest.NewRecorder()
	h.Router().ServeHTTP(res, req)
	if res.Code != http.StatusAccepted || len(q.calls) != 1 {
		t.Fatalf("status %d %q, %d calls queued", res.Code, res.Body, len(q.calls))
	}
	if left := leftHopByHop(q.calls[0].Header); len(left) != 0 {
		t.Errorf("the queued call carries %v", left)
	}
}
