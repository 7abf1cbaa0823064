package apidocs_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/internal/apidocs"
)

// doc is a contract small enough to read in a test, with a servers entry
// that must not survive.
const doc = `openapi: 3.1.0
info: {title: t, version: "1"}
servers:
  - url: https://stale.example
paths:
  /api/v1/products: {get: {operationId: list-products, responses: {"200": {description: ok}}}}
  /api/v1/orders: {post: {operationId: create-order, responses: {"201": {description: ok}}}}
`

type served struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, h http.Handler, path, host string, header ...string) served {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return served{rec.Code, rec.Header(), rec.Body.String()}
}

func handler(t *testing.T, assets fs.FS) http.Handler {
	t.Helper()
	h, err := apidocs.Handler([]byte(doc), assets)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// vendored is an assets tree as make api-docs leaves it.
func vendored() fstest.MapFS {
	m := fstest.MapFS{}
	for a := range apidocs.Assets {
		m[a] = &fstest.MapFile{Data: []byte("/* " + a + " */")}
	}
	return m
}

// The document "Try it out" reads names the origin the caller used as its
// only server — the request's Host, or behind Kong and the gateway the
// X-Forwarded-* headers — and keeps every path; a header value that is not
// a scheme, host, port or path is never written into it.
func TestDocumentNamesTheOriginTheCallerUsed(t *testing.T) {
	h := handler(t, fstest.MapFS{})
	for _, tc := range []struct {
		host   string
		header []string
		server string
	}{
		{"127.0.0.1:41234", nil, "http://127.0.0.1:41234"},
		{"[::1]:8000", nil, "http://[::1]:8000"},
		{"evil.example/x?y", nil, "http://127.0.0.1"},
		{"a\"\n  - url: http://x/", nil, "http://127.0.0.1"},
		// the local edge (Go's ReverseProxy) then the gateway
		{"127.0.0.1:8081", []string{"X-Forwarded-Host", "127.0.0.1:8000", "X-Forwarded-Proto", "http"}, "http://127.0.0.1:8000"},
		// Kong: the host without its port, the port apart
		{"gateway:8080", []string{"X-Forwarded-Host", "shop.example.com", "X-Forwarded-Proto", "https", "X-Forwarded-Port", "8443"}, "https://shop.example.com:8443"},
		{"gateway:8080", []string{"X-Forwarded-Host", "shop.example.com", "X-Forwarded-Proto", "https", "X-Forwarded-Port", "443"}, "https://shop.example.com"},
		{"gateway:8080", []string{"X-Forwarded-Host", "shop.example.com", "X-Forwarded-Proto", "https", "X-Forwarded-Prefix", "/shop"}, "https://shop.example.com/shop"},
		{"gateway:8080", []string{"X-Forwarded-Host", "evil\n", "X-Forwarded-Proto", "javascript", "X-Forwarded-Port", "1;x", "X-Forwarded-Prefix", "/a b"}, "http://gateway:8080"},
		{"gateway:8080", []string{"X-Forwarded-Host", "shop.example.com:9000", "X-Forwarded-Port", "8000"}, "http://shop.example.com:9000"},
		// an IPv6 literal, bracketed: the port joins it once bracketed
		{"gateway:8080", []string{"X-Forwarded-Host", "[2001:db8::1]", "X-Forwarded-Proto", "https", "X-Forwarded-Port", "8443"}, "https://[2001:db8::1]:8443"},
		{"gateway:8080", []string{"X-Forwarded-Host", "[2001:db8::1]", "X-Forwarded-Proto", "https", "X-Forwarded-Port", "443"}, "https://[2001:db8::1]"},
		{"gateway:8080", []string{"X-Forwarded-Host", "[2001:db8::1]", "X-Forwarded-Proto", "https"}, "https://[2001:db8::1]"},
		{"gateway:8080", []string{"X-Forwarded-Host", "[2001:db8::1]:9000", "X-Forwarded-Port", "8000"}, "http://[2001:db8::1]:9000"},
	} {
		res := get(t, h, "/openapi.yaml", tc.host, tc.header...)
		if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "application/yaml") {
			t.Fatalf("GET /openapi.yaml: %d %q", res.status, res.header.Get("Content-Type"))
		}
		var got struct {
			Servers []struct {
				URL string `yaml:"url"`
			} `yaml:"servers"`
			Paths map[string]any `yaml:"paths"`
		}
		if err := yaml.Unmarshal([]byte(res.body), &got); err != nil {
			t.Fatalf("Host %q %q: %v", tc.host, tc.header, err)
		}
		if len(got.Servers) != 1 || got.Servers[0].URL != tc.server {
			t.Errorf("Host %q %q: servers %+v, want only %s", tc.host, tc.header, got.Servers, tc.server)
		}
		if len(got.Paths) != 2 {
			t.Errorf("Host %q: %d paths, want the document's 2", tc.host, len(got.Paths))
		}
	}
}

// With the vendored assets /docs is the page, and every answer under /docs
// allows only the page's own origin; a prefix the proxy serves under
// carries over to the page's asset paths.
func TestPageLoadsOnlyFromItsOrigin(t *testing.T) {
	h := handler(t, vendored())
	for path, want := range map[string]string{
		"/docs":                      `<script src="/docs/swagger-ui-bundle.js">`,
		"/docs/":                     `<div id="swagger-ui">`,
		"/docs/init.js":              `new URL("../openapi.yaml", document.currentScript.src)`,
		"/docs/swagger-ui-bundle.js": "/* swagger-ui-bundle.js */",
		"/docs/swagger-ui.css":       "/* swagger-ui.css */",
		"/docs/LICENSE":              "/* LICENSE */",
		"/docs/NOTICE":               "/* NOTICE */",
	} {
		res := get(t, h, path, "127.0.0.1:8000")
		if res.status != http.StatusOK || !strings.Contains(res.body, want) {
			t.Errorf("GET %s: %d %q, want 200 with %q", path, res.status, res.body, want)
		}
		if csp := res.header.Get("Content-Security-Policy"); csp != apidocs.CSP || !strings.HasPrefix(csp, "default-src 'self';") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no X-Content-Type-Options", path)
		}
	}
	if res := get(t, h, "/docs/init.js", "x"); !strings.Contains(res.body, "validatorUrl: null") {
		t.Error("the page would send the document to an outside validator")
	}
	if res := get(t, h, "/docs", "x", "X-Forwarded-Prefix", "/shop"); !strings.Contains(res.body, `href="/shop/docs/swagger-ui.css"`) {
		t.Errorf("behind /shop: %s", res.body)
	}
	for _, path := range []string{"/docs/../go.mod", "/docs/package.json", "/docs/x/swagger-ui.css"} {
		if res := get(t, h, path, "x"); res.status == http.StatusOK {
			t.Errorf("GET %s: %d", path, res.status)
		}
	}
}

// Every answer Handler writes under /docs carries the CSP, the function's own 404 and 405
// problems included (a path it does not serve, a method it does not take),
// with the assets or without them; /openapi.yaml and other paths do not.
func TestEveryAnswerUnderDocsCarriesTheCSP(t *testing.T) {
	for name, assets := range map[string]fstest.MapFS{"with the assets": vendored(), "without them": {}} {
		h := handler(t, assets)
		for _, tc := range []struct {
			method, path string
			status       int
			csp          bool
		}{
			{http.MethodGet, "/docs/x", http.StatusNotFound, true},
			{http.MethodGet, "/docs/x/swagger-ui.css", http.StatusNotFound, true},
			{http.MethodPost, "/docs", http.StatusMethodNotAllowed, true},
			{http.MethodDelete, "/docs/swagger-ui.css", http.StatusMethodNotAllowed, true},
			{http.MethodGet, "/docsx", http.StatusNotFound, false},
			{http.MethodGet, "/openapi.yaml", http.StatusOK, false},
		} {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Errorf("%s: %s %s: %d, want %d", name, tc.method, tc.path, rec.Code, tc.status)
			}
			if got := rec.Header().Get("Content-Security-Policy"); (got == apidocs.CSP) != tc.csp || (!tc.csp && got != "") {
				t.Errorf("%s: %s %s: Content-Security-Policy %q, want it: %v", name, tc.method, tc.path, got, tc.csp)
			}
		}
	}
}

// Without the assets (an image built before make api-docs) the page and its
// assets answer 503 with a problem that says how to build them, and the
// document is still served.
func TestMissingAssetsSayHowToBuildThem(t *testing.T) {
	assets := vendored()
	delete(assets, "swagger-ui.css")
	h := handler(t, assets)
	for _, path := range []string{"/docs", "/docs/", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"} {
		res := get(t, h, path, "127.0.0.1:8000")
		var p struct{ Code, Detail string }
		_ = json.Unmarshal([]byte(res.body), &p)
		if res.status != http.StatusServiceUnavailable || res.header.Get("Content-Type") != "application/problem+json" ||
			p.Code != "unavailable" || !strings.Contains(p.Detail, "make api-docs before faas-cli build") {
			t.Errorf("GET %s without assets: %d %q %s", path, res.status, res.header.Get("Content-Type"), res.body)
		}
		if csp := res.header.Get("Content-Security-Policy"); csp != apidocs.CSP {
			t.Errorf("GET %s without assets: Content-Security-Policy %q", path, csp)
		}
	}
	if res := get(t, h, "/openapi.yaml", "127.0.0.1:8000"); res.status != http.StatusOK {
		t.Errorf("GET /openapi.yaml without assets: %d", res.status)
	}
}
