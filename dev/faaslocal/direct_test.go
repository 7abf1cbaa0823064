package faaslocal_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
)

// direct makes a new connection (no keep-alive) to a function's direct
// address and returns what the echo function saw, or the dial's error.
func direct(t *testing.T, base, path string) (echo, error) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	res, err := c.Get(base + path)
	if err != nil {
		return echo{}, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var e echo
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %d %s", base, path, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("GET %s%s: %v: %s", base, path, err, b)
	}
	return e, nil
}

// shopDevEnv is the environment a function of the multi-call binary (here the
// echo binary) must be deployed with: the runtime refuses one without
// SHOP_ENV=development.
var shopDevEnv = map[string]string{"SHOP_ENV": "development"}

// functionURLs parses FUNCTION_URLS (name=base-url,...).
func functionURLs(t *testing.T, v string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for kv := range strings.SplitSeq(v, ",") {
		name, base, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("FUNCTION_URLS %q: entry %q is not name=url", v, kv)
		}
		out[name] = base
	}
	return out
}

// envOf asks the echo function, through the gateway, for one variable of
// its environment.
func envOf(t *testing.T, rt *runtimetest.Runtime, fn, name string) string {
	t.Helper()
	code, e, _ := invoke(t, http.MethodGet, rt.GatewayURL+"/function/"+fn+"/env/"+name, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("%s's %s: %d", fn, name, code)
	}
	return e.Env
}

// Functions of the multi-call binary call each other directly, as on
// Kubernetes: every process gets FUNCTION_URLS naming every function's
// loopback address, every replica of a function serves on its function's
// address (the kernel spreads new connections among them), and a function
// without replicas refuses the connection, so that the caller falls back to
// the gateway, which wakes it.
func TestFunctionsCallEachOtherDirectly(t *testing.T) {
	rt := runtimetest.Start(t, runtimetest.Options{Binary: runtimetest.EchoFunction(t)})
	c := client(t, rt)
	ctx := context.Background()
	deployEcho(t, rt, c, types.FunctionDeployment{Service: "echo", EnvVars: shopDevEnv})

	urls := functionURLs(t, envOf(t, rt, "echo", "FUNCTION_URLS"))
	if diff := cmp.Diff(runtimetest.EchoFunctions, slices.Sorted(maps.Keys(urls))); diff != "" {
		t.Fatalf("FUNCTION_URLS names (-known +got):\n%s", diff)
	}
	ports := map[string]bool{}
	for name, base := range urls {
		u, err := url.Parse(base)
		if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "" || u.Path != "" || ports[u.Port()] {
			t.Errorf("FUNCTION_URLS gives %s %q: want http://127.0.0.1:<a port of its own>", name, base)
		}
		ports[u.Port()] = true
	}
	if got, want := envOf(t, rt, "echo", "SERVICE_ADDR"), strings.TrimPrefix(urls["echo"], "http://"); got != want {
		t.Errorf("echo's SERVICE_ADDR = %q, want its FUNCTION_URLS address %q", got, want)
	}

	// Directly: the gateway would add X-Forwarded-For and X-Forwarded-Host.
	e, err := direct(t, urls["echo"], "/direct?q=1")
	if err != nil {
		t.Fatalf("echo at its FUNCTION_URLS address: %v", err)
	}
	if e.Name != "echo" || e.Path != "/direct" || e.Query != "q=1" || e.Header["X-Forwarded-For"] != "" || e.Header["X-Forwarded-Host"] != "" {
		t.Errorf("direct call reached %+v, want echo without the gateway's headers", e)
	}

	// Two replicas share the address.
	if err := c.ScaleFunction(ctx, "echo", "", 2); err != nil {
		t.Fatal(err)
	}
	waitReady(t, rt, "echo")
	want := map[int]bool{}
	for _, r := range rt.Replicas("echo") {
		want[r.PID] = true
	}
	got := map[int]bool{}
	for range 64 {
		e, err := direct(t, urls["echo"], "/who")
		if err != nil {
			t.Fatal(err)
		}
		got[e.PID] = true
	}
	if len(want) != 2 || !cmp.Equal(want, got) {
		t.Errorf("new connections to echo's address served by %v, want both replicas %v", got, want)
	}

	// With no replica, nothing listens: the connection is refused, for a
	// function known but never deployed, and for one deployed at zero
	// replicas (com.openfaas.scale.min 0; the scale API raises 0 to 1, as
	// OpenFaaS's gateway does).
	refused(t, urls["echo-b"])
	atZero := types.FunctionDeployment{Service: "echo-b", EnvProcess: runtimetest.EchoFunction(t), EnvVars: shopDevEnv,
		Labels: &map[string]string{"com.openfaas.scale.min": "0"}}
	if _, err := c.Deploy(ctx, atZero); err != nil {
		t.Fatal(err)
	}
	refused(t, urls["echo-b"])

	// The caller's fallback: the gateway wakes the function, which serves
	// directly again.
	if code, e, _ := invoke(t, http.MethodGet, rt.GatewayURL+"/function/echo-b/woken", nil, nil); code != http.StatusOK || e.Path != "/woken" {
		t.Fatalf("gateway call to echo-b at zero replicas: %d %+v", code, e)
	}
	waitReady(t, rt, "echo-b")
	if e, err := direct(t, urls["echo-b"], "/again"); err != nil || e.Path != "/again" {
		t.Errorf("direct call after the wake: %+v %v", e, err)
	}
}

// refused waits (the replicas' stop is asynchronous to the caller) until a
// connection to base is refused.
func refused(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := direct(t, base, "/")
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s with no replica: %v, want connection refused", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With GatewayOnly every call goes through the gateway, as on faasd: no
// function has a direct address.
func TestGatewayOnlyGivesNoDirectAddresses(t *testing.T) {
	rt := runtimetest.Start(t, runtimetest.Options{Binary: runtimetest.EchoFunction(t), GatewayOnly: true})
	deployEcho(t, rt, client(t, rt), types.FunctionDeployment{Service: "echo", EnvVars: shopDevEnv})
	for _, v := range []string{"FUNCTION_URLS", "SERVICE_ADDR"} {
		if got := envOf(t, rt, "echo", v); got != "" {
			t.Errorf("%s = %q with GatewayOnly, want unset", v, got)
		}
	}
	if got := envOf(t, rt, "echo", "GATEWAY_URL"); got != rt.GatewayURL {
		t.Errorf("GATEWAY_URL = %q, want %q", got, rt.GatewayURL)
	}
}

// A DNS-rebinding web page reaches a function's loopback ports under its own
// name, as it would the edge and the gateway: every function process the
// runtime starts gets LOOPBACK_HOST_ONLY=true and answers such a request 421,
// on its replica's port and on its FUNCTION_URLS address, while the runtime's
// own callers (the gateway's forwarder, the supervisor's probe, a direct call
// to FUNCTION_URLS) name 127.0.0.1 and are served.
func TestFunctionPortsRefuseRebindingPages(t *testing.T) {
	rt := runtimetest.Start(t, runtimetest.Options{Binary: runtimetest.EchoFunction(t)})
	deployEcho(t, rt, client(t, rt), types.FunctionDeployment{Service: "echo", EnvVars: shopDevEnv})
	if got := envOf(t, rt, "echo", "LOOPBACK_HOST_ONLY"); got != "true" {
		t.Errorf("echo's LOOPBACK_HOST_ONLY = %q, want true", got)
	}
	bases := []string{functionURLs(t, envOf(t, rt, "echo", "FUNCTION_URLS"))["echo"]}
	for _, r := range rt.Replicas("echo") {
		bases = append(bases, "http://127.0.0.1:"+strconv.Itoa(r.Port))
	}
	for _, base := range bases {
		port := base[strings.LastIndex(base, ":")+1:]
		for host, want := range map[string]int{"rebound.attacker.example:" + port: http.StatusMisdirectedRequest, "127.0.0.1:" + port: http.StatusOK} {
			req, err := http.NewRequest(http.MethodPost, base+"/api/v1/auth/login", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = host
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if res.StatusCode != want {
				t.Errorf("%s with Host %s: %d, want %d", base, host, res.StatusCode, want)
			}
		}
	}
}

// What /system/functions lists as a function's envVars (faas-cli describe
// reads it) is what its process gets for those names: the runtime's
// GATEWAY_URL over env/development.yml's http://127.0.0.1:8080, its
// SERVICE_ADDR over the deployment's, and a name the process does not get is
// not listed. Until 2026-12-08 the deployment's values were listed as sent.
func TestTheListedEnvironmentIsWhatTheProcessGets(t *testing.T) {
	rt := runtimetest.Start(t, runtimetest.Options{Binary: runtimetest.EchoFunction(t)})
	c := client(t, rt)
	sent := map[string]string{"SHOP_ENV": "development", "GREETING": "hello",
		"GATEWAY_URL": "http://127.0.0.1:8080", "SERVICE_ADDR": "127.0.0.1:1", "OPENFAAS_NAME": "someone-else"}
	deployEcho(t, rt, c, types.FunctionDeployment{Service: "echo", EnvVars: maps.Clone(sent)})
	st, listed := describedAndListed(t, c)
	for k := range sent {
		got := envOf(t, rt, "echo", k)
		if v, ok := st.EnvVars[k]; v != got || ok != (got != "") {
			t.Errorf("described %s = %q (listed: %v), the process has %q", k, v, ok, got)
		}
		if v := listed.EnvVars[k]; v != got {
			t.Errorf("listed %s = %q, the process has %q", k, v, got)
		}
	}
	if st.EnvVars["GATEWAY_URL"] != rt.GatewayURL || st.EnvVars["GREETING"] != "hello" {
		t.Errorf("described GATEWAY_URL %q GREETING %q, want %q and hello", st.EnvVars["GATEWAY_URL"], st.EnvVars["GREETING"], rt.GatewayURL)
	}
}

// A name the runtime does not derive itself is listed as the deployment sent
// it, never with the value the host overlaid (its OTEL_* variables,
// Config.Env): those may carry a collector's API key or a database password
// the deployer never sent, and faas-cli describe would print it. Until
// 2026-12-08 the process's value was listed for every name.
func TestTheListedEnvironmentNeverShowsAHostValue(t *testing.T) {
	const hostHeaders, hostURL = "x-api-key=host-secret", "postgres://shop:host-password@127.0.0.1:5432/shop"
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", hostHeaders)
	rt := runtimetest.Start(t, runtimetest.Options{Binary: runtimetest.EchoFunction(t),
		Env: map[string]string{"DATABASE_URL": hostURL}})
	c := client(t, rt)
	sent := map[string]string{"SHOP_ENV": "development",
		"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=sent", "DATABASE_URL": "postgres://sent@127.0.0.1/shop"}
	deployEcho(t, rt, c, types.FunctionDeployment{Service: "echo", EnvVars: maps.Clone(sent)})
	if got := envOf(t, rt, "echo", "OTEL_EXPORTER_OTLP_HEADERS"); got != hostHeaders {
		t.Fatalf("the process has OTEL_EXPORTER_OTLP_HEADERS %q, want the host's %q (the test sets nothing up)", got, hostHeaders)
	}
	st, listed := describedAndListed(t, c)
	for k, want := range sent {
		if v := st.EnvVars[k]; v != want {
			t.Errorf("described %s = %q, want %q as sent", k, v, want)
		}
		if v := listed.EnvVars[k]; v != want {
			t.Errorf("listed %s = %q, want %q as sent", k, v, want)
		}
	}
}
