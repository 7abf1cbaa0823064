package fnserve_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/bundle"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/routes"
	"github.com/shopfaas/shop/internal/telemetry"
)

// A bundle of the faasd-CE stack serves several functions from one process
// whose service.name (OPENFAAS_NAME) is the bundle's: a request a member
// serves is still found as that member's. Its server span is named
// "<member> <METHOD>", as the function's own would be on the standard stack,
// with faas.name the member and shop.bundle the bundle, and every
// line logged while serving it (the member's build, failed or not, its
// handler, the panic fnserve recovers) names the member as its function, once, and the bundle
// as bundle. A request no member serves stays the bundle's.
func TestABundleTracesAndLogsEachRequestAsItsMember(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))

	var logs bytes.Buffer
	log := telemetry.NewLogger(&logs, "inventory", slog.LevelDebug)
	// A logger that is not a member's (a package's, slog.Default()'s): only
	// the request's context (Bundle.ServeHTTP's telemetry.WithFunction) can
	// name the member on its lines.
	procLog := slog.New(log.Handler())
	builders := map[string]fnhttp.Builder{}
	for _, r := range routes.Members("inventory") {
		builders[r.Function] = func(_ *config.Reader, log *slog.Logger) (http.Handler, error) {
			if r.Function == "set-stock" {
				return nil, errors.New("database down")
			}
			log.Info("member built") // no context: the member's logger alone names it
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Panic") != "" {
					panic("member broke")
				}
				log.InfoContext(r.Context(), "member served")
				procLog.InfoContext(r.Context(), "served, logged by the process's logger")
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{}`))
			}), nil
		}
	}
	members := bundle.Lazy(builders, config.New(func(string) string { return "" }), log)
	b, err := bundle.New("inventory", routes.Table(), members, log)
	if err != nil {
		t.Fatal(err)
	}
	h := fnserve.Handler(fnserve.Config{Name: "inventory", ExecTimeout: time.Minute, MaxRequestBytes: 1 << 20},
		log, prometheus.NewRegistry(), b)

	for _, tc := range []struct {
		method, path, panic  string
		span, faasName, bndl string          // bndl: the span's shop.bundle
		function             string          // of every line logged
		lines                map[string]bool // message: logged with the request's context (its trace id)
	}{
		{http.MethodPost, "/_fn/reserve-stock", "", "reserve-stock POST", "reserve-stock", "inventory", "reserve-stock",
			map[string]bool{"member built": false, "member served": true,
				"served, logged by the process's logger": true}},
		{http.MethodGet, "/api/v1/inventory/0194c5a0-0000-7000-8000-000000000001", "", "get-stock GET", "get-stock", "inventory",
			"get-stock", map[string]bool{"member built": false, "member served": true,
				"served, logged by the process's logger": true}},
		{http.MethodPost, "/_fn/commit-stock", "yes", "commit-stock POST", "commit-stock", "inventory", "commit-stock",
			map[string]bool{"member built": false, "handler panicked": true}},
		{http.MethodPut, "/api/v1/inventory/0194c5a0-0000-7000-8000-000000000001", "", "set-stock PUT", "set-stock", "inventory",
			"set-stock", map[string]bool{"function not ready": true}},
		{http.MethodGet, "/nowhere", "", "inventory GET", "", "", "inventory",
			map[string]bool{"no member of the bundle serves the request": true}},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			logs.Reset()
			before := len(rec.Ended())
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{}`))
			if tc.panic != "" {
				req.Header.Set("X-Panic", tc.panic)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			ended := rec.Ended()[before:]
			if len(ended) != 1 {
				t.Fatalf("%d spans ended, want the request's server span alone", len(ended))
			}
			s := ended[0]
			attrs := map[string]string{}
			for _, kv := range s.Attributes() {
				attrs[string(kv.Key)] = kv.Value.String()
			}
			if s.Name() != tc.span || attrs["faas.name"] != tc.faasName || attrs["shop.bundle"] != tc.bndl {
				t.Errorf("server span %q, faas.name %q, shop.bundle %q; want %q, %q, %q",
					s.Name(), attrs["faas.name"], attrs["shop.bundle"], tc.span, tc.faasName, tc.bndl)
			}
			seen := map[string]bool{}
			for line := range strings.Lines(logs.String()) {
				var l map[string]any
				if err := json.Unmarshal([]byte(line), &l); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				msg, _ := l["msg"].(string)
				withCtx, ok := tc.lines[msg]
				if !ok {
					t.Errorf("unexpected log line %s", strings.TrimSpace(line))
					continue
				}
				seen[msg] = true
				if l["function"] != tc.function || l["bundle"] != "inventory" ||
					strings.Count(line, `"function":`) != 1 || strings.Count(line, `"bundle":`) != 1 {
					t.Errorf("log line %s: want one function %q and one bundle \"inventory\"", strings.TrimSpace(line), tc.function)
				}
				if withCtx && l["trace_id"] != s.SpanContext().TraceID().String() {
					t.Errorf("log line %s: want the span's trace id %s", strings.TrimSpace(line), s.SpanContext().TraceID())
				}
			}
			for msg := range tc.lines {
				if !seen[msg] {
					t.Errorf("no log line %q in:\n%s", msg, logs.String())
				}
			}
		})
	}
}
