package fnserve_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/bundle"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/routes"
)

// A bundle of the faasd-CE stack serves several functions from one process:
// its request metrics carry the member that served each request as their
// function label, so the rules and the dashboard, which select by function
// (create-order's SLO, get-product's latency), see the same series on both
// stacks. A request no member serves counts under the bundle's name; one
// fnserve refuses before the bundle dispatches it (CheckRequestText) counts
// under the member that would have served it. The bundle is served through
// fnhttp.Lazy, as Run serves it.
func TestABundleCountsEachRequestUnderItsMember(t *testing.T) {
	members := map[string]http.Handler{}
	for _, r := range routes.Members("inventory") {
		members[r.Function] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{}`) })
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := bundle.New("inventory", routes.Table(), members, log)
	if err != nil {
		t.Fatal(err)
	}
	lazy := fnhttp.NewLazy(func(*config.Reader, *slog.Logger) (http.Handler, error) { return b, nil }, config.New(func(string) string { return "" }), log)
	reg := prometheus.NewRegistry()
	h := fnserve.Handler(fnserve.Config{Name: "inventory", ExecTimeout: time.Minute, MaxRequestBytes: 1 << 20}, log, reg, lazy)
	for _, req := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/api/v1/inventory/" + "0194c5a0-0000-7000-8000-000000000001", http.StatusOK},
		{http.MethodGet, "/api/v1/inventory/" + "0194c5a0-0000-7000-8000-000000000002", http.StatusOK},
		{http.MethodPost, "/_fn/reserve-stock", http.StatusOK},
		{http.MethodGet, "/nowhere", http.StatusNotFound},
		// Refused by fnserve's text check (a parameter sent twice: 422)
		// before the bundle dispatches: still its member's request.
		{http.MethodGet, "/api/v1/inventory/" + "0194c5a0-0000-7000-8000-000000000003?x=1&x=2", http.StatusUnprocessableEntity},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(req.method, req.path, strings.NewReader(`{}`)))
		if rec.Code != req.code {
			t.Errorf("%s %s: %d, want %d", req.method, req.path, rec.Code, req.code)
		}
	}
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "function_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "function" {
					got[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"get-stock": 3, "reserve-stock": 1, "inventory": 1}
	for fn, n := range want {
		if got[fn] != n {
			t.Errorf("function_requests_total by function: %v, want %v", got, want)
			break
		}
	}
}
