package function

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv/envtest"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/gatewayurl"
)

func decode(t *testing.T, b []byte) catalog.Product {
	t.Helper()
	var p catalog.Product
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return p
}

// create → get → update → get: the change is visible at once, the ETag
// follows the version, and a slow reader's stale write-back never sticks.
func TestGetFollowsChanges(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	p := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	path := "/api/v1/products/" + p.ID.String()

	w := envtest.Do(t, h, http.MethodGet, path, "")
	if w.Code != http.StatusOK || decode(t, w.Body.Bytes()).Name != "Desk Lamp" {
		t.Fatalf("first get: %d %s", w.Code, w.Body)
	}
	tag := w.Header().Get("ETag")
	if tag != p.ETag() {
		t.Errorf("ETag %q, want %q", tag, p.ETag())
	}
	if n, _ := env.Redis.Exists(t.Context(), env.Prefix+p.ID.String()).Result(); n != 1 {
		t.Error("the product was not cached")
	}
	w2 := envtest.Do(t, h, http.MethodGet, path, "") // from the cache
	if w2.Code != http.StatusOK || w2.Body.String() != w.Body.String() {
		t.Errorf("cached get differs: %s vs %s", w2.Body, w.Body)
	}
	if w := envtest.Do(t, h, http.MethodGet, path, "", "If-None-Match", tag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d", w.Code)
	}

	updated, err := env.Store.Update(t.Context(), p.ID, func(p catalog.Product, now time.Time) (catalog.Product, error) {
		return catalog.Apply(p, catalog.Patch{Name: catalog.Optional[string]{Set: true, Value: "Reading Lamp"}}, now)
	})
	if err != nil {
		t.Fatal(err)
	}
	env.Committed(t.Context(), updated)
	env.Remember(t.Context(), p) // a reader that loaded version 1 before the commit

	w = envtest.Do(t, h, http.MethodGet, path, "", "If-None-Match", tag)
	if w.Code != http.StatusOK || decode(t, w.Body.Bytes()).Name != "Reading Lamp" {
		t.Fatalf("get after update: %d %s", w.Code, w.Body)
	}
	if got := w.Header().Get("ETag"); got == tag || got != updated.ETag() {
		t.Errorf("ETag after update %q (before %q)", got, tag)
	}
	if w := envtest.Do(t, h, http.MethodGet, path, ""); decode(t, w.Body.Bytes()).Name != "Reading Lamp" {
		t.Errorf("second get after update is stale: %s", w.Body)
	}

	archived, err := env.Store.Update(t.Context(), p.ID, catalog.Archive)
	if err != nil {
		t.Fatal(err)
	}
	env.Committed(t.Context(), archived)
	if w := envtest.Do(t, h, http.MethodGet, path, ""); w.Code != http.StatusNotFound {
		t.Errorf("archived product: %d %s", w.Code, w.Body)
	}
}

func TestNotFound(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	for _, path := range []string{"/api/v1/products/0190f5a0-0000-7000-8000-000000000000", "/api/v1/products/abc"} {
		if w := envtest.Do(t, h, http.MethodGet, path, ""); w.Code != http.StatusNotFound {
			t.Errorf("%s: %d", path, w.Code)
		}
	}
}

// get-product's 404 for a product id names it (product_id), and that is
// the one 404 the catalog client reads as "no such product": through the
// gateway's path an unknown and an archived product are fault.NotFound, while
// a client that reaches the function at a path it does not serve (a
// misconfigured locator: the function's own "no such route" 404) is
// unavailable, so no caller drops the product for it.
func TestTheCatalogClientReadsOnlyGetProductsOwn404AsNotFound(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	srv := httptest.NewServer(http.StripPrefix("/function/get-product", h))
	t.Cleanup(srv.Close)
	client := func(t *testing.T, gateway string) *catalogclient.Client {
		t.Helper()
		c, err := catalogclient.New(catalogclient.Config{Locator: gatewayurl.Locator{Gateway: gateway}, Attempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	unknown := uuid.Must(uuid.NewV7())
	w := envtest.Do(t, h, http.MethodGet, "/api/v1/products/"+unknown.String(), "")
	var problem struct {
		Code      string `json:"code"`
		ProductID string `json:"product_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &problem); err != nil || w.Code != http.StatusNotFound ||
		problem.Code != "not_found" || problem.ProductID != unknown.String() {
		t.Fatalf("unknown product: %d %s, want 404 not_found naming product_id %s", w.Code, w.Body, unknown)
	}

	p := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	if got, err := client(t, srv.URL).GetProduct(t.Context(), p.ID); err != nil || got.ID != p.ID {
		t.Fatalf("live product: %+v, %v", got, err)
	}
	archived, err := env.Store.Update(t.Context(), p.ID, catalog.Archive)
	if err != nil {
		t.Fatal(err)
	}
	env.Committed(t.Context(), archived)
	for _, id := range []uuid.UUID{unknown, p.ID} {
		if _, err := client(t, srv.URL).GetProduct(t.Context(), id); !fault.Is(err, fault.NotFound, fault.CodeNotFound) {
			t.Errorf("GetProduct(%s) = %v, want not_found", id, err)
		}
		// A gateway URL with a stray path: get-product answers its
		// fnhttp.Routes 404 (not_found "no such route").
		if _, err := client(t, srv.URL+"/function/get-product/typo").GetProduct(t.Context(), id); !fault.Is(err, fault.Unavailable, fault.CodeUnavailable) {
			t.Errorf("through a path get-product does not serve: GetProduct(%s) = %v, want unavailable", id, err)
		}
	}
}

// A product answers at the one path its canonical id makes (either case, as
// the contract's format: uuid allows); every other spelling uuid.Parse would
// read as the same id is 404, so a product has one path.
func TestAProductIsReachedOnlyByItsCanonicalID(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	p := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	id := p.ID.String()
	for _, tt := range []struct {
		id     string
		status int
	}{
		{id, http.StatusOK},
		{strings.ToUpper(id), http.StatusOK},
		{strings.ReplaceAll(id, "-", ""), http.StatusNotFound},
		{"%7B" + id + "%7D", http.StatusNotFound},
		{"urn:uuid:" + id, http.StatusNotFound},
	} {
		w := envtest.Do(t, h, http.MethodGet, "/api/v1/products/"+tt.id, "")
		if w.Code != tt.status {
			t.Errorf("%s: %d, want %d", tt.id, w.Code, tt.status)
			continue
		}
		if tt.status == http.StatusOK && decode(t, w.Body.Bytes()).ID != p.ID {
			t.Errorf("%s: %s", tt.id, w.Body)
		}
	}
}

// With Redis down the product is served from PostgreSQL.
func TestRedisDown(t *testing.T) {
	env := envtest.New(t, envtest.Options{RedisAddr: "127.0.0.1:1"})
	h := New(env.Deps)
	p := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	for range 2 {
		w := envtest.Do(t, h, http.MethodGet, "/api/v1/products/"+p.ID.String(), "")
		if w.Code != http.StatusOK || decode(t, w.Body.Bytes()).ID != p.ID {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
