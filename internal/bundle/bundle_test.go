package bundle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/bundle"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/routes"
	"github.com/shopfaas/shop/internal/telemetry"
)

// seen is what a recording member received.
type seen struct {
	Member, Method, Path, Query, Body string
}

// recorder returns a handler per function that answers 200 with what it got.
func recorder(names ...string) map[string]http.Handler {
	out := map[string]http.Handler{}
	for _, n := range names {
		out[n] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(seen{n, r.Method, r.URL.Path, r.URL.RawQuery, string(b)})
		})
	}
	return out
}

func inventory(t *testing.T) *bundle.Bundle {
	t.Helper()
	var names []string
	for _, r := range routes.Members("inventory") {
		names = append(names, r.Function)
	}
	b, err := bundle.New("inventory", routes.Table(), recorder(names...), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Each member is built on its own first request: one whose build fails
// answers 503 while a sibling serves, and neither is built before it is asked.
func TestLazyMembersBuildAlone(t *testing.T) {
	built := map[string]int{}
	members := map[string]fnhttp.Builder{
		"get-stock": func(*config.Reader, *slog.Logger) (http.Handler, error) {
			built["get-stock"]++
			return recorder("get-stock")["get-stock"], nil
		},
		"set-stock": func(*config.Reader, *slog.Logger) (http.Handler, error) {
			built["set-stock"]++
			return nil, errors.New("catalog down")
		},
	}
	handlers := bundle.Lazy(members, config.New(config.Env(nil)), slog.New(slog.DiscardHandler))
	if len(built) != 0 {
		t.Fatalf("built before any request: %v", built)
	}
	rec := httptest.NewRecorder()
	handlers["set-stock"].ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/api/v1/inventory/x", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("failing member: %d, want 503", rec.Code)
	}
	rec = httptest.NewRecorder()
	handlers["get-stock"].ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/inventory/x", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("sibling: %d, want 200", rec.Code)
	}
	if diff := cmp.Diff(map[string]int{"get-stock": 1, "set-stock": 1}, built); diff != "" {
		t.Errorf("builds (-want +got):\n%s", diff)
	}
}

// A bundle is ready only when every member is: a readiness check builds the
// members not built yet (the sibling that can serve is built by it, not by a
// request), names the member that cannot be built, whose log line carries
// its name, and passes once that member builds. The function's handler
// (fnhttp.Lazy over the bundle's Build, as fnserve serves it) reports the
// same.
func TestABundleIsReadyWhenEveryMemberIs(t *testing.T) {
	built := map[string]int{}
	up := false
	members := map[string]fnhttp.Builder{
		"get-stock": func(*config.Reader, *slog.Logger) (http.Handler, error) {
			built["get-stock"]++
			return recorder("get-stock")["get-stock"], nil
		},
		"set-stock": func(*config.Reader, *slog.Logger) (http.Handler, error) {
			built["set-stock"]++
			if !up {
				return nil, errors.New("catalog down")
			}
			return recorder("set-stock")["set-stock"], nil
		},
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	handlers := bundle.Lazy(members, config.New(config.Env(nil)), log)
	var others []string
	for _, r := range routes.Members("inventory") {
		if _, ok := handlers[r.Function]; !ok {
			others = append(others, r.Function)
		}
	}
	for name, h := range recorder(others...) { // not Readiers: always ready
		handlers[name] = h
	}
	b, err := bundle.New("inventory", routes.Table(), handlers, log)
	if err != nil {
		t.Fatal(err)
	}
	fn := fnhttp.NewLazy(func(*config.Reader, *slog.Logger) (http.Handler, error) { return b, nil }, config.New(config.Env(nil)), log)

	err = fn.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "set-stock") || strings.Contains(err.Error(), "get-stock") {
		t.Errorf("ready with set-stock unbuildable: %v, want an error naming set-stock only", err)
	}
	if diff := cmp.Diff(map[string]int{"get-stock": 1, "set-stock": 1}, built); diff != "" {
		t.Errorf("builds after one check (-want +got):\n%s", diff)
	}
	if !strings.Contains(logged.String(), `"member":"set-stock"`) || !strings.Contains(logged.String(), "catalog down") {
		t.Errorf("the failed build's log line does not name its member and cause:\n%s", logged.String())
	}
	up = true
	if err := fn.Ready(context.Background()); err != nil {
		t.Errorf("ready once every member builds: %v", err)
	}
	if diff := cmp.Diff(map[string]int{"get-stock": 1, "set-stock": 2}, built); diff != "" {
		t.Errorf("builds after the second check (-want +got):\n%s", diff)
	}
}

func TestDispatch(t *testing.T) {
	inv := inventory(t)
	var users []string
	for _, r := range routes.Members("users") {
		users = append(users, r.Function)
	}
	usr, err := bundle.New("users", routes.Table(), recorder(users...), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		b       http.Handler
		method  string
		target  string
		headers map[string]string
		body    string
		want    seen
	}{
		{name: "public route", b: inv, method: "GET", target: "/api/v1/inventory/abc?x=1",
			want: seen{"get-stock", "GET", "/api/v1/inventory/abc", "x=1", ""}},
		{name: "public route, other method", b: inv, method: "PUT", target: "/api/v1/inventory/abc", body: `{"on_hand":3}`,
			want: seen{"set-stock", "PUT", "/api/v1/inventory/abc", "", `{"on_hand":3}`}},
		{name: "most specific public route", b: usr, method: "GET", target: "/api/v1/users/me/notifications",
			want: seen{"list-notifications", "GET", "/api/v1/users/me/notifications", "", ""}},
		{name: "internal prefix", b: inv, method: "POST", target: "/_fn/reserve-stock", body: `{"order_id":"x"}`,
			want: seen{"reserve-stock", "POST", "/", "", `{"order_id":"x"}`}},
		{name: "internal prefix keeps the rest of the path", b: inv, method: "POST", target: "/_fn/release-stock/a/b?q=1",
			want: seen{"release-stock", "POST", "/a/b", "q=1", ""}},
		{name: "internal prefix reaches a public member", b: inv, method: "GET", target: "/_fn/get-stock/api/v1/inventory/p1",
			want: seen{"get-stock", "GET", "/api/v1/inventory/p1", "", ""}},
		{name: "topic", b: usr, method: "POST", target: "/", headers: map[string]string{"X-Topic": "order.placed.v1"}, body: "{}",
			want: seen{"notify-user", "POST", "/", "", "{}"}},
		{name: "schedule", b: inv, method: "POST", target: "/", headers: map[string]string{"X-Scheduled-At": "2026-01-01T00:00:00Z"},
			want: seen{"expire-reservations", "POST", "/", "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			tc.b.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var got seen
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("member saw (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDispatchUnknown(t *testing.T) {
	inv := inventory(t)
	for _, tc := range []struct {
		name, method, target string
		headers              map[string]string
	}{
		{"unknown path", "GET", "/api/v1/products", nil},
		{"public path under another method", "DELETE", "/api/v1/inventory/abc", nil},
		{"another service's internal function", "POST", "/_fn/charge-payment", nil},
		{"empty internal name", "POST", "/_fn/", nil},
		{"topic nobody in the bundle subscribes to", "POST", "/", map[string]string{"X-Topic": "order.placed.v1"}},
		{"root without topic or schedule", "POST", "/", nil},
		{"schedule header on a public-looking path", "POST", "/api/v1/nothing", map[string]string{"X-Scheduled-At": "now"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			inv.ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			var p struct {
				Code string `json:"code"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != "not_found" {
				t.Errorf("problem %s (err %v), want code not_found", rec.Body, err)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	table := []routes.Route{
		{Function: "a", Service: "s", Kind: routes.Event, Topics: []string{"x.v1"}},
		{Function: "b", Service: "s", Kind: routes.Event, Topics: []string{"y.v1", "x.v1"}},
		{Function: "c", Service: "s", Kind: routes.Scheduled, Schedule: "* * * * *"},
		{Function: "d", Service: "s", Kind: routes.Scheduled, Schedule: "* * * * *"},
		{Function: "e", Service: "s", Kind: routes.Public, Method: "GET", Path: "/api/v1/things/{id}"},
		{Function: "f", Service: "s", Kind: routes.Public, Method: "GET", Path: "/api/v1/things/{thing}"},
		{Function: "g", Service: "s", Kind: routes.Public, Method: "GET", Path: "/_fn/g"},
	}
	_, err := bundle.New("s", table, recorder("a", "b", "c", "d", "e", "f", "g"), nil)
	if err == nil {
		t.Fatal("New accepted a table that cannot be bundled")
	}
	for _, want := range []string{"a and b both subscribe to x.v1", "c and d are both scheduled", "e and f both serve GET", "reserved prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	ok := table[:1]
	if _, err := bundle.New("s", ok, recorder(), nil); err == nil || !strings.Contains(err.Error(), "no handler for a") {
		t.Errorf("missing handler: err %v", err)
	}
	if _, err := bundle.New("s", ok, recorder("a", "zz"), nil); err == nil || !strings.Contains(err.Error(), "handler zz") {
		t.Errorf("extra handler: err %v", err)
	}
	if _, err := bundle.New("nobody", ok, recorder("a"), nil); err == nil {
		t.Error("a service without functions was accepted")
	}
	if _, err := bundle.New("s", ok, recorder("a"), nil); err != nil {
		t.Errorf("valid bundle: %v", err)
	}
}

// The real route table can be bundled: every service is a valid bundle.
func TestTableBundles(t *testing.T) {
	if err := routes.CheckBundles(routes.Table()); err != nil {
		t.Fatal(err)
	}
	for _, s := range routes.Services() {
		var names []string
		for _, r := range routes.Members(s) {
			names = append(names, r.Function)
		}
		if _, err := bundle.New(s, routes.Table(), recorder(names...), nil); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

// A member's request is copied once: with the member named in its context
// (telemetry.WithFunction) and, for an internal call, its path rewritten,
// by one Clone, not a Clone and a WithContext.
func TestAMemberRequestIsCopiedOnce(t *testing.T) {
	handlers := map[string]http.Handler{}
	for _, r := range routes.Members("inventory") {
		handlers[r.Function] = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	}
	b, err := bundle.New("inventory", routes.Table(), handlers, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	for _, tc := range []struct {
		method, target string
		max            float64
	}{
		// 6 when the request was copied by WithContext, then cloned by
		// rewrite (commit 14c6003).
		{http.MethodPost, "/_fn/reserve-stock", 5},
		// A public route is not rewritten: one WithContext.
		{http.MethodGet, "/api/v1/inventory/abc", 5},
	} {
		req := httptest.NewRequest(tc.method, tc.target, nil)
		allocs := testing.AllocsPerRun(100, func() { b.ServeHTTP(w, req) })
		t.Logf("%s %s: %.0f allocations", tc.method, tc.target, allocs)
		if allocs > tc.max {
			t.Errorf("%s %s: %.0f allocations, want at most %.0f", tc.method, tc.target, allocs, tc.max)
		}
	}
}

// readyLogger is a member whose readiness check logs with its context
// through the process's logger, not a member's.
type readyLogger struct{ log *slog.Logger }

func (readyLogger) ServeHTTP(http.ResponseWriter, *http.Request) {}

func (m readyLogger) Ready(ctx context.Context) error {
	m.log.InfoContext(ctx, "readiness checked")
	return nil
}

// Ready asks each member with a context naming it (telemetry.WithFunction):
// a line its check logs through any logger of telemetry.NewLogger names the
// member as its function and the bundle as its bundle.
func TestReadyNamesEachMemberInItsContext(t *testing.T) {
	var logged bytes.Buffer
	log := telemetry.NewLogger(&logged, "inventory", slog.LevelInfo)
	handlers := map[string]http.Handler{}
	var want []string
	for _, r := range routes.Members("inventory") {
		handlers[r.Function] = readyLogger{log}
		want = append(want, r.Function)
	}
	b, err := bundle.New("inventory", routes.Table(), handlers, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for l := range strings.Lines(logged.String()) {
		var v struct{ Function, Bundle string }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		if v.Bundle != "inventory" {
			t.Errorf("line %s: want bundle \"inventory\"", strings.TrimSpace(l))
		}
		got = append(got, v.Function)
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("functions of the readiness lines (-want +got):\n%s", diff)
	}
}
