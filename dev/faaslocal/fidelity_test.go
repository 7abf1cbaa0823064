package faaslocal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
)

// TestProviderFidelity makes the HTTP calls faas-cli and a real OpenFaaS
// gateway make (recorded below) and expects the answers faas-provider,
// the OpenFaaS CE gateway and of-watchdog give.
func TestProviderFidelity(t *testing.T) {
	rt := runtimetest.Start(t, runtimetest.Options{AllowExec: true})
	c := client(t, rt)
	deployEcho(t, rt, c, types.FunctionDeployment{Service: "echo",
		EnvVars: map[string]string{"exec_timeout": "2s"}})

	// faas-cli login -g <gateway> -u admin --password-stdin checks the
	// credentials with GET /system/functions and basic auth: 200 logs in,
	// 401 is "either username or password is incorrect". Without a login,
	// faas-cli's calls get 401 with a Basic challenge.
	login := func(user, password string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, rt.GatewayURL+"/system/functions", nil)
		req.Header.Set("User-Agent", "faas-cli/0.17.4")
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	creds := rt.GatewayCredentials()
	if res := login("admin", creds.Password); creds.User != "admin" || res.StatusCode != http.StatusOK {
		t.Errorf("faas-cli login as %s: %d", creds.User, res.StatusCode)
	}
	for _, tc := range []struct{ user, password string }{{"admin", creds.Password + "x"}, {"root", creds.Password}, {"", ""}} {
		if res := login(tc.user, tc.password); res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic realm=") {
			t.Errorf("login as %q with a wrong password or none: %d %q", tc.user, res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	}

	// /system/info: the gateway's shape to faas-cli; the provider's shape
	// to a gateway, which forwards the call with X-Forwarded-Host.
	res, b := do(t, http.MethodGet, rt.GatewayURL+"/system/info", nil, authz(rt.Runtime))
	var gw struct {
		Provider types.ProviderInfo `json:"provider"`
	}
	if err := json.Unmarshal(b, &gw); res.StatusCode != http.StatusOK || err != nil || gw.Provider.Name != "faas-local" {
		t.Errorf("gateway-shaped info: %v %s", err, b)
	}
	res, b = do(t, http.MethodGet, rt.GatewayURL+"/system/info", nil,
		authz(rt.Runtime, map[string]string{"X-Forwarded-Host": "127.0.0.1:8080", "X-Forwarded-For": "127.0.0.1:5555"}))
	var prov types.ProviderInfo
	if err := json.Unmarshal(b, &prov); res.StatusCode != http.StatusOK || err != nil || prov.Name != "faas-local" || prov.Orchestration != "process" {
		t.Errorf("provider-shaped info: %v %s", err, b)
	}

	// faas-cli namespace get: faas-provider answers 501 without namespace management.
	if res, b := do(t, http.MethodGet, rt.GatewayURL+"/system/namespace/openfaas-fn", nil, authz(rt.Runtime)); res.StatusCode != http.StatusNotImplemented {
		t.Errorf("namespace get: %d %s", res.StatusCode, b)
	}

	// faas-cli invoke echo: POST /function/echo; the gateway's call id and
	// start time reach the function and come back, with the watchdog's duration.
	code, e, h := invoke(t, http.MethodPost, rt.GatewayURL+"/function/echo", strings.NewReader("hi"), nil)
	if code != http.StatusOK || e.Header["X-Call-Id"] == "" || e.Header["X-Call-Id"] != h.Get("X-Call-Id") {
		t.Errorf("call id: %d sent %q answered %q", code, e.Header["X-Call-Id"], h.Get("X-Call-Id"))
	}
	if start, err := strconv.ParseInt(h.Get("X-Start-Time"), 10, 64); err != nil || time.Since(time.Unix(0, start)) > time.Minute ||
		e.Header["X-Start-Time"] != h.Get("X-Start-Time") {
		t.Errorf("X-Start-Time: answered %q, function saw %q", h.Get("X-Start-Time"), e.Header["X-Start-Time"])
	}
	if d, err := strconv.ParseFloat(h.Get("X-Duration-Seconds"), 64); err != nil || d <= 0 {
		t.Errorf("X-Duration-Seconds %q", h.Get("X-Duration-Seconds"))
	}
	if !strings.HasPrefix(h.Get("X-Served-By"), "faas-local/") {
		t.Errorf("X-Served-By %q", h.Get("X-Served-By"))
	}
	// A caller's own call id is kept.
	if _, e, _ := invoke(t, http.MethodPost, rt.GatewayURL+"/function/echo.openfaas-fn?x=1", nil, map[string]string{"X-Call-Id": "mine"}); e.Header["X-Call-Id"] != "mine" {
		t.Errorf("own call id became %q", e.Header["X-Call-Id"])
	}

	// exec_timeout (2s) and X-Timeout: 504 from the watchdog, no body.
	for _, tc := range []struct {
		query, xTimeout string
		within          time.Duration
	}{
		{"?sleep=4s", "", 3500 * time.Millisecond},
		{"?sleep=3s", "300ms", 1500 * time.Millisecond},
	} {
		start := time.Now()
		res, b := do(t, http.MethodGet, rt.GatewayURL+"/function/echo"+tc.query, nil, map[string]string{"X-Timeout": tc.xTimeout})
		if res.StatusCode != http.StatusGatewayTimeout || res.Header.Get("X-OpenFaaS-Internal") != "of-watchdog" || len(b) != 0 ||
			res.Header.Get("X-Duration-Seconds") == "" || time.Since(start) > tc.within {
			t.Errorf("timeout %s X-Timeout %q: %d %v after %v: %q", tc.query, tc.xTimeout, res.StatusCode, res.Header, time.Since(start), b)
		}
	}
	// An X-Timeout longer than exec_timeout is ignored, a shorter call is untouched.
	if code, _, _ := invoke(t, http.MethodGet, rt.GatewayURL+"/function/echo?sleep=100ms", nil, map[string]string{"X-Timeout": "1h"}); code != http.StatusOK {
		t.Errorf("X-Timeout 1h: %d", code)
	}

	// faas-cli deploy of a function made with faas-cli new --lang shop-go
	// (PUT then POST /system/functions with the template's fprocess): refused
	// at once with what to do, never accepted to fail later.
	newFn := []byte(`{"service":"my-fn","image":"my-fn:latest","envProcess":"./handler","namespace":"openfaas-fn",` +
		`"labels":{"com.openfaas.scale.min":"1"},"annotations":{}}`)
	res, b = do(t, http.MethodPost, rt.GatewayURL+"/system/functions", bytes.NewReader(newFn), authz(rt.Runtime))
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "make generate") || !strings.Contains(string(b), "adding-a-function.md") {
		t.Errorf("deploy of a template-made function: %d %s", res.StatusCode, b)
	}

	// Scale, as OpenFaaS's gateway scales: clamped to 5, and 0 raised to 1
	// (until 2026-12-05 the local runtime scaled to 0, which faasd never
	// does). The body names the function as the path does: faasd reads the
	// body's serviceName, OpenFaaS on Kubernetes the path.
	scaleAs := func(service string, n uint64) (int, string) {
		body, _ := json.Marshal(types.ScaleServiceRequest{ServiceName: service, Replicas: n})
		res, b := do(t, http.MethodPost, rt.GatewayURL+"/system/scale-function/echo", bytes.NewReader(body), authz(rt.Runtime))
		return res.StatusCode, string(b)
	}
	for _, tc := range []struct{ replicas, want uint64 }{{9, 5}, {0, 1}} {
		if code, b := scaleAs("echo", tc.replicas); code != http.StatusAccepted {
			t.Fatalf("scale %d: %d %s", tc.replicas, code, b)
		}
		if st, err := c.GetFunction(context.Background(), "echo", ""); err != nil || st.Replicas != tc.want {
			t.Errorf("scale %d: replicas %d, %v; want %d", tc.replicas, st.Replicas, err, tc.want)
		}
	}
	for _, service := range []string{"", "other"} {
		if code, b := scaleAs(service, 2); code != http.StatusBadRequest || !strings.Contains(b, "serviceName") {
			t.Errorf("scale echo with serviceName %q: %d %s; want 400 naming serviceName", service, code, b)
		}
	}
	// An asynchronous call is a POST, as the gateway routes it: any other
	// method is 405 (until 2026-12-05 the local runtime queued GET, PUT,
	// PATCH and DELETE too).
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if res, b := do(t, m, rt.GatewayURL+"/async-function/echo", nil, nil); res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /async-function/echo: %d %s; want 405", m, res.StatusCode, b)
		}
	}
}
