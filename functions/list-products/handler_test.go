package function

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv/envtest"
)

// Pages over a category cover every product exactly once, newest first.
func TestPagination(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	var want []uuid.UUID
	for i := range 10 {
		p := env.Create(t, fmt.Sprintf("AUD-%d", i), fmt.Sprintf("Speaker %d", i), "audio", 1000+int64(i))
		want = append([]uuid.UUID{p.ID}, want...) // newest first
		env.Create(t, fmt.Sprintf("HOM-%d", i), fmt.Sprintf("Lamp %d", i), "home", 500)
	}
	archived := env.Create(t, "AUD-X", "Old Speaker", "audio", 100)
	if _, err := env.Store.Update(t.Context(), archived.ID, catalog.Archive); err != nil {
		t.Fatal(err)
	}

	var got []uuid.UUID
	cursor, pages := "", 0
	for {
		q := url.Values{"category": {"audio"}, "limit": {"3"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		w := envtest.Do(t, h, http.MethodGet, "/api/v1/products?"+q.Encode(), "")
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var page struct {
			Items      []catalog.Product `json:"items"`
			NextCursor *string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, p := range page.Items {
			if p.Category != "audio" {
				t.Errorf("item of category %q", p.Category)
			}
			got = append(got, p.ID)
		}
		if page.NextCursor == nil {
			break
		}
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		cursor = *page.NextCursor
	}
	if pages != 4 {
		t.Errorf("%d pages, want 4 (3+3+3+1)", pages)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}

	w := envtest.Do(t, h, http.MethodGet, "/api/v1/products", "")
	var all struct {
		Items []catalog.Product `json:"items"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &all); err != nil || len(all.Items) != catalog.DefaultLimit {
		t.Errorf("default page: %d items, %v", len(all.Items), err)
	}
}

func TestRefusals(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	for _, q := range []string{"limit=1000", "limit=0", "limit=abc", "cursor=garbage", "cursor=" + url.QueryEscape("cDE6bm90LWEtdXVpZA"),
		"category=Not%20Slug"} {
		if w := envtest.Do(t, h, http.MethodGet, "/api/v1/products?"+q, ""); w.Code != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422: %s", q, w.Code, w.Body)
		}
	}
	w := envtest.Do(t, h, http.MethodGet, "/api/v1/products?category=none", "")
	if w.Code != http.StatusOK || w.Body.String() != "{\"items\":[],\"next_cursor\":null}\n" {
		t.Errorf("empty list: %d %s", w.Code, w.Body)
	}
}
