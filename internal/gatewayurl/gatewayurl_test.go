package gatewayurl_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestNewClientFollowsNoRedirect: a call's answer is the callee's own, 3xx
// included. Following a 307/308 re-sent the POST with its X-Internal-Token
// (net/http strips only Authorization and Cookie across hosts) and body to
// whatever host Location named; following a 301/302/303 turned it into a GET
// without a body whose 2xx the caller took for the callee's.
func TestNewClientFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		if tok := r.Header.Get("X-Internal-Token"); tok != "" {
			t.Errorf("the internal credential reached another host: %q", tok)
		}
	}))
	t.Cleanup(other.Close)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/steal", status)
		}))
		loc := gatewayurl.Locator{Gateway: gw.URL}
		req, err := http.NewRequest(http.MethodPost, loc.URL("reserve-stock"), strings.NewReader(`{"order_id":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Internal-Token", "internal-secret")
		res, err := loc.NewClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		gw.Close()
		if res.StatusCode != status {
			t.Errorf("a %d answer came back as %d, want the %d itself", status, res.StatusCode, status)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("%d request(s) followed a redirect to another host, want none", n)
	}
}

// Shown never prints a secret of the URL's userinfo: a password is masked
// (url.URL.Redacted), and so is a user without one, which may be a token
// sent as basic auth's user name.
func TestShownHidesTheUserinfosSecrets(t *testing.T) {
	for raw, want := range map[string]string{
		"http://gateway:8080":                   "http://gateway:8080",
		"http://admin:s3cret@gateway:8080":      "http://admin:xxxxx@gateway:8080",
		"http://tok3n@gateway:8080/":            "http://xxxxx@gateway:8080/",
		"http://gate way:8080/%zz":              "(unparsable)",
		"https://admin:s3cret@gateway:8443/p?q": "https://admin:xxxxx@gateway:8443/p?q",
	} {
		if got := gatewayurl.Shown(raw); got != want {
			t.Errorf("Shown(%q) = %q, want %q", raw, got, want)
		}
	}
}
