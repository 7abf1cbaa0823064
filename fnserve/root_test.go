package fnserve_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/shopfaas/shop/fnserve"
)

// echo answers the method, path and query the handler saw.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+" "+r.URL.RawQuery)
})

// TestAtRoot calls a public function the way faas-cli invoke does (its
// root, path parameters in the query string) and at its public path, and a
// wrong path, which must say where the function is served.
func TestAtRoot(t *testing.T) {
	cases := []struct {
		fn, method, target string
		status             int
		want               string // the handler's echo, or a fragment of the problem's detail
	}{
		{"login-user", "POST", "/", 200, "POST /api/v1/auth/login "},
		{"login-user", "POST", "", 200, "POST /api/v1/auth/login "},
		{"login-user", "POST", "/api/v1/auth/login", 200, "POST /api/v1/auth/login "},
		{"get-product", "GET", "/?id=0193-abc", 200, "GET /api/v1/products/0193-abc "},
		{"list-products", "GET", "/?category=audio&limit=2", 200, "GET /api/v1/products category=audio&limit=2"},
		{"set-cart-item", "PUT", "/?product_id=p1&x=1", 200, "PUT /api/v1/cart/items/p1 x=1"},
		{"get-product", "GET", "/", 404, "get-product needs the query parameter id at its root; get-product serves GET /api/v1/products/{id} (its public path) and GET / with ?id= (its root"},
		{"login-user", "POST", "/login", 404, "no such path: login-user serves POST /api/v1/auth/login (its public path) and POST / (its root"},
		{"get-product", "GET", "/api/v1/products", 404, "get-product serves GET /api/v1/products/{id}"},
		// not public: unchanged, whatever the path
		{"reserve-stock", "POST", "/anything", 200, "POST /anything "},
		{"inventory", "POST", "/_fn/reserve-stock", 200, "POST /_fn/reserve-stock "},
	}
	for _, tc := range cases {
		h := fnserve.AtRoot(tc.fn, echo)
		req := httptest.NewRequest(tc.method, "http://fn/", nil)
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Path, req.URL.RawQuery = u.Path, u.RawQuery
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s %s %q: status %d, want %d (%s)", tc.fn, tc.method, tc.target, rec.Code, tc.status, rec.Body)
			continue
		}
		got := rec.Body.String()
		if tc.status != 200 {
			var p struct{ Code, Detail string }
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != "not_found" {
				t.Errorf("%s %q: not a not_found problem: %s", tc.fn, tc.target, got)
			}
			got = p.Detail
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s %s %q: got %q, want it to contain %q", tc.fn, tc.method, tc.target, got, tc.want)
		}
	}
}

// TestRootThroughRun: the serving path applies AtRoot with the function's
// name (OPENFAAS_NAME), after /_/health.
func TestRootThroughRun(t *testing.T) {
	s := serve(t, map[string]string{"OPENFAAS_NAME": "get-product"}, echo)
	if code, body := get(t, s.url+"/?id=42"); code != 200 || body != "GET /api/v1/products/42 " {
		t.Errorf("root: %d %q", code, body)
	}
	if code, body := get(t, s.url+"/_/health"); code != 200 || body != "OK" {
		t.Errorf("health: %d %q", code, body)
	}
	if code, body := get(t, s.url+"/nope"); code != 404 || !strings.Contains(body, "get-product serves GET /api/v1/products/{id}") {
		t.Errorf("wrong path: %d %q", code, body)
	}
}
