package apidocs_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/dev/apidocs"
)

type served struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, h http.Handler, host, path string) served {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = host
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return served{rec.Code, rec.Header(), rec.Body.String()}
}

func handler(t *testing.T, dir string) http.Handler {
	t.Helper()
	h, err := apidocs.Handler(api.OpenAPI(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The document "Try it out" reads names the origin that served it as its
// only server, so the page calls the edge it came from; every path of the
// contract is still there, and a Host that is not a host name is never
// written into it.
func TestDocumentNamesTheEdgeItCameFrom(t *testing.T) {
	h := handler(t, t.TempDir())
	var want struct {
		Paths map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &want); err != nil {
		t.Fatal(err)
	}
	for host, server := range map[string]string{
		"127.0.0.1:41234":         "http://127.0.0.1:41234",
		"localhost:8000":          "http://localhost:8000",
		"[::1]:8000":              "http://[::1]:8000",
		"evil.example/x?y":        "http://127.0.0.1",
		"a\"\n  - url: http://x/": "http://127.0.0.1",
	} {
		res := get(t, h, host, "/openapi.yaml")
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
			t.Fatalf("Host %q: %v", host, err)
		}
		if len(got.Servers) != 1 || got.Servers[0].URL != server {
			t.Errorf("Host %q: servers %+v, want only %s", host, got.Servers, server)
		}
		if len(got.Paths) == 0 || len(got.Paths) != len(want.Paths) {
			t.Errorf("Host %q: %d paths, want the contract's %d", host, len(got.Paths), len(want.Paths))
		}
	}
}

// Without the vendored assets /docs says how to get them (make api-docs);
// with them it is the page, and every answer under /docs allows only the
// edge's own origin.
func TestPageLoadsOnlyFromTheEdge(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "assets")
	h := handler(t, dir)
	res := get(t, h, "127.0.0.1:8000", "/docs")
	if res.status != http.StatusServiceUnavailable || !strings.Contains(res.body, "make api-docs") {
		t.Errorf("/docs without assets: %d %q", res.status, res.body)
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("/* "+f+" */"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string]string{
		"/docs":                      `<script src="/docs/swagger-ui-bundle.js">`,
		"/docs/":                     `<div id="swagger-ui">`,
		"/docs/init.js":              `url: "/openapi.yaml"`,
		"/docs/swagger-ui-bundle.js": "/* swagger-ui-bundle.js */",
		"/docs/swagger-ui.css":       "/* swagger-ui.css */",
		"/docs/LICENSE":              "/* LICENSE */",
	} {
		res := get(t, h, "127.0.0.1:8000", path)
		if res.status != http.StatusOK || !strings.Contains(res.body, want) {
			t.Errorf("GET %s: %d %q, want 200 with %q", path, res.status, res.body, want)
		}
		if csp := res.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self';") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	if res := get(t, h, "127.0.0.1:8000", "/docs/init.js"); !strings.Contains(res.body, "validatorUrl: null") {
		t.Error("the page would send the document to an outside validator")
	}
	if res := get(t, h, "127.0.0.1:8000", "/docs/../go.mod"); res.status == http.StatusOK {
		t.Errorf("GET /docs/../go.mod: %d", res.status)
	}
	for path, want := range map[string]bool{"/docs": true, "/docs/x.js": true, "/openapi.yaml": true,
		"/api/v1/products": false, "/docsx": false, "/": false} {
		if got := apidocs.Serves(path); got != want {
			t.Errorf("Serves(%q) = %v, want %v", path, got, want)
		}
	}
}
