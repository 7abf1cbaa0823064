package fnserve

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCallsFirstRoutesAsTheMux: every request gets from callsFirst what the
// ServeMux of Handler gives it — the same handler (health, metrics or the
// function's), status, Location and Allow, and the same Pattern — on paths
// clean and unclean, escaped, under /_/ and not, with every method.
func TestCallsFirstRoutesAsTheMux(t *testing.T) {
	build := func() (*http.ServeMux, http.Handler) {
		mux := http.NewServeMux()
		named := func(name string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Served", name+" "+r.Pattern+" "+r.URL.RequestURI())
				w.WriteHeader(http.StatusTeapot)
			})
		}
		calls := named("calls")
		mux.Handle("GET /_/health", named("health"))
		mux.Handle("GET /_/metrics", named("metrics"))
		mux.Handle("/", calls)
		return mux, calls
	}
	paths := []string{"/", "/api/v1/products/0b5e3c1a", "/api/v1/products/0b5e3c1a/", "/api//v1", "/api/./v1",
		"/api/../x", "/a/b/..", "/a/b/.", "/%2F", "/a%2Fb", "/a%20b", "/ä", "/_/health", "/_/health/", "/_/metrics",
		"/_/x", "/_", "/_/", "//_/health", "/./_/health", "/api?x=1", "/api/?x=1&y=%2F", "/api//?q=1", "*",
		"/api/v1/orders/x/timeline"}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "PROPFIND"}
	for _, p := range paths {
		for _, m := range methods {
			serve := func(h http.Handler) string {
				r := httptest.NewRequest(m, "http://fn.test"+p, nil)
				if p == "*" {
					r = httptest.NewRequest(m, "/", nil)
					r.URL.Path, r.RequestURI = "*", "*"
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return fmt.Sprintf("%d served=%q location=%q allow=%q pattern=%q", w.Code, w.Header().Get("X-Served"),
					w.Header().Get("Location"), w.Header().Get("Allow"), r.Pattern)
			}
			ref, _ := build()
			want := serve(ref)
			mux, calls := build()
			if got := serve(callsFirst(mux, calls)); got != want {
				t.Errorf("%s %s: %s, the mux: %s", m, p, got, want)
			}
		}
	}
}
