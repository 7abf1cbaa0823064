package faaslocal

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopfaas/shop/dev/faaslocal/edge"
	"github.com/shopfaas/shop/dev/faaslocal/secrets"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/redisconn"
)

// TestEdgeReachesTheGatewayInProcessUntilItStops: the runtime's edge hands
// requests to the gateway's handler in process (the gateway sees no
// connection of its own: RemoteAddr is the in-process one), and once the
// gateway has begun to shut down the edge answers 502, as it did when the
// gateway's listener refused the connection.
func TestEdgeReachesTheGatewayInProcessUntilItStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	remote := make(chan string, 1)
	gw := serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remote <- r.RemoteAddr
		_, _ = io.WriteString(w, "gateway "+r.URL.Path)
	}), slog.New(slog.DiscardHandler))
	decl := oneFunction(t)
	opts := edge.Options{Upstreams: map[string]string{gatewayHost: gw.addr()}, Log: slog.New(slog.DiscardHandler),
		Local: map[string]http.Handler{gatewayHost: gw.inProcess()}}
	e, err := edge.New(decl, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	get := func() (int, string) {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/x", nil))
		return w.Code, w.Body.String()
	}
	if code, body := get(); code != http.StatusOK || body != "gateway /function/fn/api/x" {
		t.Fatalf("before shutdown: %d %q", code, body)
	}
	if addr := <-remote; !strings.HasSuffix(addr, ":0") {
		t.Errorf("the gateway saw RemoteAddr %q: the request came over a connection, not in process", addr)
	}
	if err := gw.shutdown(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != http.StatusBadGateway || !strings.Contains(body, "bad_gateway") {
		t.Errorf("after shutdown: %d %q, want the edge's 502", code, body)
	}
}

// The edge resolves kong.yml's {vault://env/shop-redis-kong-password} from
// the runtime's redis-kong-password secret, as docker-compose.yml exports it
// for Kong, and from nothing else: empty or absent (the development
// default) it is "", and the rate limits send no AUTH; neither a host
// variable of that name nor the functions' redis-password is read.
func TestTheEdgeTakesTheRedisPasswordFromTheSecret(t *testing.T) {
	store, err := secrets.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Root: "../..", Getenv: func(name string) string { return "from-the-host-" + name }}
	opts, err := edgeOptions(cfg, store, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	getenv := opts.Getenv
	if got := getenv("SHOP_REDIS_KONG_PASSWORD"); got != "" {
		t.Errorf("without the secret: %q, want \"\"", got)
	}
	if err := store.Create(redisconn.PasswordSecret, []byte("functions\n")); err != nil {
		t.Fatal(err)
	}
	if got := getenv("SHOP_REDIS_KONG_PASSWORD"); got != "" {
		t.Errorf("with the functions' redis-password only: %q, want \"\" (Kong never holds it)", got)
	}
	if err := store.Create(KongRedisPasswordSecret, []byte("pw\n")); err != nil {
		t.Fatal(err)
	}
	if got := getenv("SHOP_REDIS_KONG_PASSWORD"); got != "pw" {
		t.Errorf("with the secret: %q, want pw", got)
	}
}

// The edge's rate limits count in the functions' Redis: Config.Env's
// REDIS_ADDR, else env/development.yml's, never a host REDIS_ADDR, which the
// functions do not inherit (until 2026-12-07 the edge took the host's, and
// counted in another Redis than the carts').
func TestTheEdgeRateLimitsInTheFunctionsRedis(t *testing.T) {
	store, err := secrets.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Root: "../..", Getenv: func(name string) string {
		if name == "REDIS_ADDR" {
			return "127.0.0.1:6380"
		}
		return ""
	}}
	opts, err := edgeOptions(cfg, store, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if got := opts.Upstreams["redis:6379"]; got != "127.0.0.1:6379" {
		t.Errorf("with a host REDIS_ADDR: redis:6379 is %q, want env/development.yml's 127.0.0.1:6379", got)
	}
	cfg.Env = map[string]string{"REDIS_ADDR": "127.0.0.1:7000"}
	if opts, err = edgeOptions(cfg, store, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if got := opts.Upstreams["redis:6379"]; got != "127.0.0.1:7000" {
		t.Errorf("with Config.Env: redis:6379 is %q, want 127.0.0.1:7000", got)
	}
}

// The edge counts its failed span exports as a function does (fnserve): its
// /metrics (Edge.Metrics) serves shop_telemetry_export_failures_total
// {signal="traces"} beside Kong's metrics, at 0 from the start with or
// without a collector, one more per failed batch (here the collector
// redirects, which the exporter follows not), and a WARN line on the
// runtime's log names the failure. Until 2026-12-08 the edge counted none:
// otel's global handler logged each failed batch on the runtime's stderr.
func TestTheEdgeCountsItsFailedExports(t *testing.T) {
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/v1/traces", http.StatusPermanentRedirect)
	}))
	defer moved.Close()
	decl := oneFunction(t)
	const zero, one = `shop_telemetry_export_failures_total{signal="traces"} 0`, `shop_telemetry_export_failures_total{signal="traces"} 1`
	for _, otlp := range []string{"", moved.URL} {
		var logs proctest.Output
		reg, failures, tp, err := edgeTracing(t.Context(), otlp, slog.New(slog.NewJSONHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if (tp != nil) != (otlp != "") {
			t.Fatalf("collector %q: provider %v", otlp, tp)
		}
		e, err := edge.New(decl, edge.Options{Log: slog.New(slog.DiscardHandler), Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		metrics := func() string {
			w := httptest.NewRecorder()
			e.Metrics().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			return w.Body.String()
		}
		if m := metrics(); !strings.Contains(m, zero) {
			t.Fatalf("collector %q: the edge's metrics before any export lack %s:\n%s", otlp, zero, m)
		}
		if tp == nil {
			continue
		}
		_, span := tp.Tracer("test").Start(t.Context(), "op")
		span.End()
		if err := tp.ForceFlush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := tp.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		failures.Unlogged()
		if m := metrics(); !strings.Contains(m, one) {
			t.Errorf("the edge's metrics after a failed export lack %s:\n%s", one, m)
		}
		if l := logs.String(); !strings.Contains(l, `"level":"WARN","msg":"telemetry export failed: spans dropped"`) || !strings.Contains(l, "308") {
			t.Errorf("the runtime's log after a failed export:\n%s", l)
		}
	}
}

// oneFunction is an edge declaration with one service, the gateway's
// function fn, routed from /api with the path kept.
func oneFunction(t *testing.T) *edge.Declarative {
	t.Helper()
	decl, err := edge.Parse([]byte(`
_format_version: "3.0"
services:
  - name: fn
    url: http://gateway:8080/function/fn
    routes:
      - {name: fn, paths: [/api], strip_path: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	return decl
}
