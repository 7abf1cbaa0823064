package fntest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// ClosingServer is a real HTTP server on loopback that answers with h every
// request except the second one on each connection, for which it closes the
// connection without answering: a replica killed or restarted while a
// client kept a connection to it alive. Conns counts the connections
// accepted; a client that sends a call again on a new connection makes two.
type ClosingServer struct {
	*httptest.Server
	Conns atomic.Int64
}

// NewClosingServer starts a ClosingServer over h, closed at the test's end.
func NewClosingServer(t testing.TB, h http.Handler) *ClosingServer {
	t.Helper()
	type key struct{}
	s := &ClosingServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(key{}).(*atomic.Int64).Add(1) == 2 {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
			}
			return
		}
		h.ServeHTTP(w, r)
	}))
	s.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		s.Conns.Add(1)
		return context.WithValue(ctx, key{}, new(atomic.Int64))
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// NewUnusedGateway starts a real HTTP server on loopback standing for an
// OpenFaaS gateway that a test expects no call to reach (every call went
// straight to the function): a call fails the test and is answered 502. It
// is closed at the test's end.
func NewUnusedGateway(t testing.TB) *httptest.Server {
	t.Helper()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the gateway was called: %s %s", r.Method, r.URL)
		http.Error(w, "gateway", http.StatusBadGateway)
	}))
	t.Cleanup(gw.Close)
	return gw
}
