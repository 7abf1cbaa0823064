package function

import (
	"net/http"
	"testing"

	"github.com/shopfaas/shop/internal/catalog/catalogenv/envtest"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/search"
)

func TestArchive(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	admin := env.Token(t, "admin")
	p := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	keep := env.Create(t, "LAMP-2", "Floor Lamp", "home", 4999)
	env.Remember(t.Context(), p)
	path := "/api/v1/products/" + p.ID.String()

	for _, c := range []struct {
		auth   string
		status int
	}{{"", http.StatusUnauthorized}, {env.Token(t, "customer"), http.StatusForbidden}} {
		if w := envtest.Do(t, h, http.MethodDelete, path, "", "Authorization", c.auth); w.Code != c.status {
			t.Errorf("auth %q: status %d, want %d", c.auth, w.Code, c.status)
		}
	}
	if _, err := env.Store.Get(t.Context(), p.ID); err != nil {
		t.Fatalf("refused deletes archived the product: %v", err)
	}

	if w := envtest.Do(t, h, http.MethodDelete, path, "", "Authorization", admin); w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if _, err := env.Store.Get(t.Context(), p.ID); !fault.Is(err, fault.NotFound, "not_found") {
		t.Errorf("archived product still fetched: %v", err)
	}
	if _, _, ok := env.Cached(t.Context(), p.ID.String()); ok {
		t.Error("archived product still cached")
	}
	items, _, err := env.Store.List(t.Context(), "home", [16]byte{}, 10)
	if err != nil || len(items) != 1 || items[0].ID != keep.ID {
		t.Errorf("list after archive: %d items, %v", len(items), err)
	}
	res, err := env.Search.Search(t.Context(), search.Query{Text: "lamp", Limit: 10, Sort: search.SortRelevance})
	if err != nil || res.Total != 1 || res.Hits[0].ID != keep.ID {
		t.Errorf("search after archive: %+v, %v", res, err)
	}
	if n := env.OutboxCount(t, p.ID); n != 2 {
		t.Errorf("%d events, want 2 (create, archive)", n)
	}
	if w := envtest.Do(t, h, http.MethodDelete, path, "", "Authorization", admin); w.Code != http.StatusNotFound {
		t.Errorf("second delete: %d", w.Code)
	}
	if w := envtest.Do(t, h, http.MethodDelete, "/api/v1/products/nope", "", "Authorization", admin); w.Code != http.StatusNotFound {
		t.Errorf("bad id: %d", w.Code)
	}
}
