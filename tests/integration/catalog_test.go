package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// The catalog through the local edge and gateway, as a client sees it: create,
// read, update (visible on the very next read despite the cache), search with
// a typo, archive (gone from get, list and search).
func TestCatalogThroughTheEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local runtime; -short was asked for")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "test:catalog:" + hex.EncodeToString(b) + ":"
	rt := runtimetest.Start(t, runtimetest.Options{
		Functions: []string{"create-product", "update-product", "archive-product", "list-products", "get-product", "search-products"},
		Env: map[string]string{"CATALOG_DATABASE_URL": pgtest.NewDatabase(t), "REDIS_ADDR": "127.0.0.1:6379",
			"PRODUCT_CACHE_PREFIX": prefix, "MEILI_URL": ""},
	})
	tokens, err := auth.ParseSigner(rt.ReadSecret(t, "jwt-signing-key"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := tokens.Issue(uuid.New(), auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	customer, _ := tokens.Issue(uuid.New(), auth.RoleCustomer)

	call := func(method, path, body, token string, want int) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, rt.EdgeURL+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, raw)
		}
		var out map[string]any
		if len(raw) > 0 {
			_ = json.Unmarshal(raw, &out)
		}
		return out
	}

	body := `{"sku":"HP-1","name":"Studio Headphones","description":"Closed back","category":"audio","price":{"amount":12999,"currency":"USD"}}`
	call(http.MethodPost, "/api/v1/products", body, customer, http.StatusForbidden)
	call(http.MethodPost, "/api/v1/products", body, "", http.StatusUnauthorized)
	p := call(http.MethodPost, "/api/v1/products", body, admin, http.StatusCreated)
	path := "/api/v1/products/" + p["id"].(string)
	if got := call(http.MethodGet, path, "", "", http.StatusOK); got["name"] != "Studio Headphones" {
		t.Errorf("get: %v", got)
	}
	call(http.MethodPatch, path, `{"name":"Monitor Headphones"}`, admin, http.StatusOK)
	if got := call(http.MethodGet, path, "", "", http.StatusOK); got["name"] != "Monitor Headphones" {
		t.Errorf("get after update is stale: %v", got)
	}
	res := call(http.MethodGet, "/api/v1/search/products?q=hedphones", "", "", http.StatusOK)
	if res["total"] != float64(1) {
		t.Errorf("search with a typo: %v", res)
	}
	call(http.MethodGet, "/api/v1/search/products?sort=bogus", "", "", http.StatusUnprocessableEntity)
	call(http.MethodDelete, path, "", admin, http.StatusNoContent)
	call(http.MethodGet, path, "", "", http.StatusNotFound)
	if list := call(http.MethodGet, "/api/v1/products", "", "", http.StatusOK); len(list["items"].([]any)) != 0 {
		t.Errorf("archived product listed: %v", list)
	}
	if res := call(http.MethodGet, "/api/v1/search/products?q=headphones", "", "", http.StatusOK); res["total"] != float64(0) {
		t.Errorf("archived product found: %v", res)
	}
}
