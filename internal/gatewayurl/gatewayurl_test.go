package gatewayurl_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/gatewayurl"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		gateway, function string
		bundled           bool
		want              string
	}{
		{"http://gateway:8080", "reserve-stock", false, "http://gateway:8080/function/reserve-stock"},
		{"http://gateway:8080/", "reserve-stock", true, "http://gateway:8080/function/inventory/_fn/reserve-stock"},
		{"http://gateway:8080", "charge-payment", true, "http://gateway:8080/function/payments/_fn/charge-payment"},
		{"http://gateway:8080", "get-product", true, "http://gateway:8080/function/catalog/_fn/get-product"},
		{"http://gateway:8080", "not-in-table", true, "http://gateway:8080/function/not-in-table"},
	} {
		if got := gatewayurl.URL(tc.gateway, tc.function, tc.bundled); got != tc.want {
			t.Errorf("URL(%q, %q, %v) = %q, want %q", tc.gateway, tc.function, tc.bundled, got, tc.want)
		}
	}
}

func TestFromConfig(t *testing.T) {
	c := config.New(config.Env(map[string]string{"GATEWAY_URL": "http://gw:8080", "FUNCTION_BUNDLES": "true"}))
	l := gatewayurl.FromConfig(c)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if l != (gatewayurl.Locator{Gateway: "http://gw:8080", Bundled: true}) {
		t.Errorf("FromConfig = %+v", l)
	}
	c = config.New(config.Env(map[string]string{"GATEWAY_URL": "http://gw:8080", "FUNCTION_BUNDLES": "maybe"}))
	gatewayurl.FromConfig(c)
	if c.Err() == nil {
		t.Error("FUNCTION_BUNDLES=maybe was accepted")
	}
	c = config.New(config.Env(map[string]string{}))
	if l := gatewayurl.FromConfig(c); l.Bundled || c.Err() == nil {
		t.Errorf("empty environment: %+v, err %v; want unbundled and a missing GATEWAY_URL", l, c.Err())
	}
}

// TestClientReusesConnectionsUnderConcurrency: a function that makes 8 calls
// at once, round after round, keeps reusing its connections to the gateway
// instead of opening new ones (Go's default transport keeps only 2 idle).
func TestClientReusesConnectionsUnderConcurrency(t *testing.T) {
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(2 * time.Millisecond) // keep the 8 calls overlapping
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	client := gatewayurl.Locator{}.NewClient()
	const concurrent, rounds = 8, 20
	for range rounds {
		var wg sync.WaitGroup
		for range concurrent {
			wg.Go(func() {
				res, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			})
		}
		wg.Wait()
	}
	if n := opened.Load(); n > 2*concurrent {
		t.Errorf("%d connections opened for %d rounds of %d concurrent calls, want at most %d", n, rounds, concurrent, 2*concurrent)
	}
}
