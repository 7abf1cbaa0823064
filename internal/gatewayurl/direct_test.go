package gatewayurl_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/gatewayurl"
)

// received is what a test server was asked.
type received struct {
	method, path, query, body, header string
}

// recorder is a real HTTP server on loopback that records every request.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, received{req.Method, req.URL.Path, req.URL.RawQuery, string(body), req.Header.Get("X-Test")})
		r.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

// locate is gatewayurl.FromConfig over env, failing the test on a problem.
func locate(t *testing.T, env map[string]string) gatewayurl.Locator {
	t.Helper()
	c := config.New(config.Env(env))
	loc := gatewayurl.FromConfig(c)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	return loc
}

func call(t *testing.T, client *http.Client, method, url, body string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test", "kept")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", method, url, res.Status)
	}
}

// refusedURL is the address of a closed listener: connecting to it is refused.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestDirectCallsSkipTheGateway: a call of a function named in FUNCTION_URLS
// reaches that function's address with its path, query, method, headers and
// body, and never the gateway; a function not named reaches the gateway.
func TestDirectCallsSkipTheGateway(t *testing.T) {
	gw, direct := newRecorder(t), newRecorder(t)
	loc := locate(t, map[string]string{"GATEWAY_URL": gw.URL, "FUNCTION_URLS": " get-product=" + direct.URL + " , , other=http://127.0.0.1:1"})
	client := loc.NewClient()
	call(t, client, http.MethodGet, loc.URL("get-product")+"/api/v1/products/x?y=1", "")
	call(t, client, http.MethodPost, loc.URL("get-product"), "body")
	call(t, client, http.MethodPost, loc.URL("reserve-stock")+"/a%2Fb?q=2", "hold")
	wantDirect := []received{
		{http.MethodGet, "/api/v1/products/x", "y=1", "", "kept"},
		{http.MethodPost, "/", "", "body", "kept"},
	}
	if got := direct.received(); !equal(got, wantDirect) {
		t.Errorf("direct server got %+v, want %+v", got, wantDirect)
	}
	wantGateway := []received{{http.MethodPost, "/function/reserve-stock/a/b", "q=2", "hold", "kept"}}
	if got := gw.received(); !equal(got, wantGateway) {
		t.Errorf("gateway got %+v, want %+v", got, wantGateway)
	}
}

func equal(a, b []received) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDirectTemplateNamesEveryOtherFunction: FUNCTION_URL_TEMPLATE gives
// every function FUNCTION_URLS does not name its address ({name} replaced),
// and FUNCTION_URLS wins for the functions it names. The template's host
// names are resolved to the test's servers by the dialer.
func TestDirectTemplateNamesEveryOtherFunction(t *testing.T) {
	gw, templated, listed := newRecorder(t), newRecorder(t), newRecorder(t)
	loc := locate(t, map[string]string{"GATEWAY_URL": gw.URL,
		"FUNCTION_URL_TEMPLATE": "http://{name}.openfaas-fn.test:8080",
		"FUNCTION_URLS":         "reserve-stock=" + listed.URL})
	next := gatewayurl.NewTransport()
	var dialed []string
	var mu sync.Mutex
	next.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		if addr == "get-product.openfaas-fn.test:8080" {
			addr = templated.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	client := &http.Client{Transport: loc.Transport(next)}
	call(t, client, http.MethodGet, loc.URL("get-product")+"/api/v1/products/x", "")
	call(t, client, http.MethodPost, loc.URL("reserve-stock"), "hold")
	if got, want := templated.received(), []received{{http.MethodGet, "/api/v1/products/x", "", "", "kept"}}; !equal(got, want) {
		t.Errorf("templated server got %+v, want %+v", got, want)
	}
	if got, want := listed.received(), []received{{http.MethodPost, "/", "", "hold", "kept"}}; !equal(got, want) {
		t.Errorf("listed server got %+v, want %+v", got, want)
	}
	if got := gw.received(); len(got) != 0 {
		t.Errorf("gateway got %+v, want nothing", got)
	}
	if len(dialed) == 0 || dialed[0] != "get-product.openfaas-fn.test:8080" {
		t.Errorf("dialed %q, want get-product.openfaas-fn.test:8080 first", dialed)
	}
}

// TestBundledStackIgnoresDirectURLs: with FUNCTION_BUNDLES=true every call
// goes through the gateway whatever FUNCTION_URLS and FUNCTION_URL_TEMPLATE say.
func TestBundledStackIgnoresDirectURLs(t *testing.T) {
	gw, direct := newRecorder(t), newRecorder(t)
	loc := locate(t, map[string]string{"GATEWAY_URL": gw.URL, "FUNCTION_BUNDLES": "true",
		"FUNCTION_URLS": "get-product=" + direct.URL, "FUNCTION_URL_TEMPLATE": "http://{name}:1"})
	if loc.Direct != nil {
		t.Errorf("bundled locator has direct URLs")
	}
	call(t, loc.NewClient(), http.MethodGet, loc.URL("get-product")+"/api/v1/products/x", "")
	if got := direct.received(); len(got) != 0 {
		t.Errorf("direct server got %+v in the bundled stack", got)
	}
	if got, want := gw.received(), []received{{http.MethodGet, "/function/catalog/_fn/get-product/api/v1/products/x", "", "", "kept"}}; !equal(got, want) {
		t.Errorf("gateway got %+v, want %+v", got, want)
	}
}

// TestRefusedDirectCallGoesToTheGateway: when a function's address refuses
// the connection (no replica), the same request, body intact, goes to the
// gateway; without a way to read the body again the dial error is returned
// and the gateway gets nothing.
func TestRefusedDirectCallGoesToTheGateway(t *testing.T) {
	gw := newRecorder(t)
	loc := locate(t, map[string]string{"GATEWAY_URL": gw.URL, "FUNCTION_URLS": "reserve-stock=" + refusedURL(t)})
	client := loc.NewClient()
	call(t, client, http.MethodPost, loc.URL("reserve-stock")+"/x?y=1", `{"order_id":"o"}`)
	call(t, client, http.MethodGet, loc.URL("reserve-stock"), "")
	want := []received{
		{http.MethodPost, "/function/reserve-stock/x", "y=1", `{"order_id":"o"}`, "kept"},
		{http.MethodGet, "/function/reserve-stock", "", "", "kept"},
	}
	if got := gw.received(); !equal(got, want) {
		t.Errorf("gateway got %+v, want %+v", got, want)
	}

	req, err := http.NewRequest(http.MethodPost, loc.URL("reserve-stock"), io.NopCloser(strings.NewReader("once")))
	if err != nil {
		t.Fatal(err)
	}
	if req.GetBody != nil {
		t.Fatal("the request can read its body again")
	}
	if res, err := client.Do(req); err == nil {
		res.Body.Close()
		t.Errorf("a body that cannot be read again was sent: %s", res.Status)
	}
	if got := gw.received(); len(got) != len(want) {
		t.Errorf("gateway got %+v, want only %+v", got, want)
	}
}

// TestADirectAddressThatDropsConnectsGoesToTheGateway: an address that
// never answers a connect (a black hole: the dialer waits until its context
// ends, as for a pod gone whose IP drops packets) costs a call
// DirectDialTimeout, not the call's whole deadline, and the call is answered
// by the gateway.
func TestADirectAddressThatDropsConnectsGoesToTheGateway(t *testing.T) {
	gw := newRecorder(t)
	loc := locate(t, map[string]string{"GATEWAY_URL": gw.URL, "FUNCTION_URLS": "reserve-stock=http://black-hole.test:8080"})
	next := gatewayurl.NewTransport()
	next.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "black-hole.test:8080" {
			<-ctx.Done()
			return (&net.Dialer{}).DialContext(ctx, network, addr) // the dialer's own error for an ended connect
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	client := &http.Client{Transport: loc.Transport(next)}
	ctx, cancel := context.WithTimeout(context.Background(), 4*gatewayurl.DirectDialTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, loc.URL("reserve-stock"), strings.NewReader("hold"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	res.Body.Close()
	if took := time.Since(start); took > 3*gatewayurl.DirectDialTimeout {
		t.Errorf("the call took %s, want about DirectDialTimeout (%s)", took, gatewayurl.DirectDialTimeout)
	}
	if got, want := gw.received(), []received{{http.MethodPost, "/function/reserve-stock", "", "hold", ""}}; !equal(got, want) {
		t.Errorf("gateway got %+v, want %+v", got, want)
	}
}

// TestBadDirectURLsAreConfigErrors: every bad FUNCTION_URLS entry and a bad
// FUNCTION_URL_TEMPLATE is a configuration problem naming the entry.
func TestBadDirectURLsAreConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"FUNCTION_URLS", "get-product", `"get-product" is not name=base-url`},
		{"FUNCTION_URLS", "get-product=ftp://h:1", `"get-product=ftp://h:1"`},
		{"FUNCTION_URLS", "get-product=http://h:1/api", `"get-product=http://h:1/api"`},
		{"FUNCTION_URLS", "get-product=http://h:1?q=1", `"get-product=http://h:1?q=1"`},
		{"FUNCTION_URLS", "get-product=http://u:p@h:1", `"get-product=http://u:p@h:1"`},
		{"FUNCTION_URLS", "get-product=http://h:port", `"get-product=http://h:port"`},
		{"FUNCTION_URLS", "get-product=h:1", `"get-product=h:1"`},
		{"FUNCTION_URLS", "get-product=", `"get-product="`},
		{"FUNCTION_URLS", "Get_Product=http://h:1", `"Get_Product" is not a function name`},
		{"FUNCTION_URLS", "=http://h:1", `"" is not a function name`},
		{"FUNCTION_URLS", "a=http://h:1,a=http://h:2", `function a is named twice`},
		{"FUNCTION_URL_TEMPLATE", "http://h:8080", `does not contain {name}`},
		{"FUNCTION_URL_TEMPLATE", "http://{name}:8080/api", `"http://{name}:8080/api"`},
		{"FUNCTION_URL_TEMPLATE", "{name}:8080", `"{name}:8080"`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			c := config.New(config.Env(map[string]string{"GATEWAY_URL": "http://gw:8080", tc.name: tc.value}))
			gatewayurl.FromConfig(c)
			err := c.Err()
			if err == nil || !strings.Contains(err.Error(), tc.name+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s=%q: error %v, want one naming %s and %s", tc.name, tc.value, err, tc.name, tc.want)
			}
		})
	}
}

// TestReplayableCallSurvivesAClosedKeepAliveConnection: a POST marked
// replayable that meets a kept-alive connection the server closes is sent
// again by net/http on a new connection and succeeds; the same POST
// unmarked fails, since it may have been delivered.
func TestReplayableCallSurvivesAClosedKeepAliveConnection(t *testing.T) {
	for _, marked := range []bool{true, false} {
		var mu sync.Mutex
		var answered []string
		srv := fntest.NewClosingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			answered = append(answered, string(body))
			mu.Unlock()
			_, _ = io.WriteString(w, "ok")
		}))
		client := gatewayurl.Locator{Gateway: srv.URL}.NewClient()
		var errs []error
		for _, body := range []string{"first", "second"} {
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/function/reserve-stock", bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			if marked {
				gatewayurl.MarkReplayable(req.Header)
			}
			res, err := client.Do(req)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		mu.Lock()
		got := strings.Join(answered, ",")
		mu.Unlock()
		switch {
		case marked && (len(errs) != 0 || got != "first,second" || srv.Conns.Load() != 2):
			t.Errorf("marked: errors %v, server answered %q on %d connections; want both answered, the second on a new connection",
				errs, got, srv.Conns.Load())
		case !marked && len(errs) != 1:
			t.Errorf("unmarked: errors %v, want the second call to fail", errs)
		}
	}
}

// TestAFailedDirectCallGoesToTheGatewayWhenItMaySendItTwice: a replica that
// takes the connection and dies before answering (here: closes every
// connection on its first request, a fresh one, which net/http never sends
// again itself) fails the direct call after it may have been delivered. A
// call marked replayable then goes to the gateway, body intact, which sends
// it to another replica; an unmarked POST fails, and the gateway gets
// nothing.
func TestAFailedDirectCallGoesToTheGatewayWhenItMaySendItTwice(t *testing.T) {
	dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(dying.Close)
	gw := newRecorder(t)
	loc := locate(t, map[string]string{"GATEWAY_URL": gw.URL, "FUNCTION_URLS": "charge-payment=" + dying.URL})
	client := loc.NewClient()
	send := func(marked bool) error {
		req, err := http.NewRequest(http.MethodPost, loc.URL("charge-payment")+"/charge", strings.NewReader(`{"order_id":"o"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Test", "kept")
		if marked {
			gatewayurl.MarkReplayable(req.Header)
		}
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		return res.Body.Close()
	}

	if err := send(false); err == nil {
		t.Error("an unmarked POST that may have been delivered was answered")
	}
	if got := gw.received(); len(got) != 0 {
		t.Errorf("the gateway got an unmarked POST that may have been delivered: %+v", got)
	}
	if err := send(true); err != nil {
		t.Fatalf("marked POST: %v", err)
	}
	want := []received{{http.MethodPost, "/function/charge-payment/charge", "", `{"order_id":"o"}`, "kept"}}
	if got := gw.received(); !equal(got, want) {
		t.Errorf("gateway got %+v, want %+v", got, want)
	}
}
