package function

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/internal/apidocs"
	"github.com/shopfaas/shop/internal/config"
)

func do(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Host = "gateway:8080"
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func build(t *testing.T, assets fstest.MapFS) http.Handler {
	t.Helper()
	h, err := New(api.OpenAPI(), assets, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Behind Kong and the gateway the document names the public origin the
// caller used, the page and its assets come with the CSP, and nothing but
// GET of the document and the page is served.
func TestServesTheContractAndThePageBehindKong(t *testing.T) {
	assets := fstest.MapFS{}
	for a := range apidocs.Assets {
		assets[a] = &fstest.MapFile{Data: []byte("/* " + a + " */")}
	}
	h := build(t, assets)
	kong := []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "shop.example.com", "X-Forwarded-Port", "8443"}
	w := do(t, h, http.MethodGet, "/openapi.yaml", kong...)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `url: "https://shop.example.com:8443"`+"\n") ||
		!strings.Contains(w.Body.String(), "operationId: create-order") {
		t.Errorf("GET /openapi.yaml: %d %.300s", w.Code, w.Body)
	}
	for _, path := range []string{"/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js", "/docs/LICENSE"} {
		w := do(t, h, http.MethodGet, path, kong...)
		if w.Code != http.StatusOK || w.Header().Get("Content-Security-Policy") != apidocs.CSP {
			t.Errorf("GET %s: %d, CSP %q", path, w.Code, w.Header().Get("Content-Security-Policy"))
		}
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/openapi.yaml", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v1/products", http.StatusNotFound},
		{http.MethodGet, "/docs/package.json", http.StatusNotFound},
	} {
		if w := do(t, h, tc.method, tc.path); w.Code != tc.status || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d %q, want a %d problem", tc.method, tc.path, w.Code, w.Header().Get("Content-Type"), tc.status)
		}
	}
}

// A build without the vendored assets (faas-cli build before make api-docs)
// still serves the document, and the page says how to build it.
func TestWithoutAssetsThePageSaysHowToBuildThem(t *testing.T) {
	h := build(t, fstest.MapFS{"README.md": {Data: []byte("placeholder")}})
	if w := do(t, h, http.MethodGet, "/openapi.yaml"); w.Code != http.StatusOK {
		t.Errorf("GET /openapi.yaml: %d", w.Code)
	}
	w := do(t, h, http.MethodGet, "/docs")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "make api-docs before faas-cli build") {
		t.Errorf("GET /docs without assets: %d %s", w.Code, w.Body)
	}
}

// Build reads the embedded folder: whatever this checkout holds (the
// placeholder alone, or the vendored package too), the document is served.
func TestBuildServesTheEmbeddedFolder(t *testing.T) {
	h, err := Build(config.New(config.Env(map[string]string{})), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if w := do(t, h, http.MethodGet, "/openapi.yaml"); w.Code != http.StatusOK {
		t.Errorf("GET /openapi.yaml: %d", w.Code)
	}
	want := http.StatusServiceUnavailable
	if _, err := embedded.Open("assets/" + apidocs.Dir + "/swagger-ui-bundle.js"); err == nil {
		want = http.StatusOK
	}
	if w := do(t, h, http.MethodGet, "/docs"); w.Code != want {
		t.Errorf("GET /docs: %d, want %d", w.Code, want)
	}
}
