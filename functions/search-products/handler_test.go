package function

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv/envtest"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/search"
)

func TestSearch(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Search, env.Log)
	hp := env.Create(t, "HP-1", "Studio Headphones", "audio", 12999)
	env.Create(t, "SP-1", "Bluetooth Speaker", "audio", 8999)
	lamp := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	if _, err := env.Store.SetSoldCount(t.Context(), lamp.ID, 50); err != nil {
		t.Fatal(err)
	}

	get := func(q url.Values) search.Result {
		t.Helper()
		w := envtest.Do(t, h, http.MethodGet, "/api/v1/search/products?"+q.Encode(), "")
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", q.Encode(), w.Code, w.Body)
		}
		var res search.Result
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := get(url.Values{"q": {"hedphones"}})
	if len(res.Hits) != 1 || res.Hits[0].ID != hp.ID || res.Total != 1 {
		t.Errorf("misspelled query: %+v", res)
	}
	res = get(url.Values{"sort": {"popularity"}, "limit": {"1"}})
	if len(res.Hits) != 1 || res.Hits[0].ID != lamp.ID || res.Hits[0].SoldCount != 50 || res.Total != 3 {
		t.Errorf("popularity: %+v", res)
	}
	if diff := cmp.Diff(map[string]map[string]int{"category": {"audio": 2, "home": 1}}, res.Facets); diff != "" {
		t.Errorf("facets (-want +got):\n%s", diff)
	}
	res = get(url.Values{"min_price": {"5000"}, "max_price": {"10000"}})
	if len(res.Hits) != 1 || res.Hits[0].Name != "Bluetooth Speaker" {
		t.Errorf("price filter: %+v", res)
	}
	if res = get(url.Values{"in_stock": {"true"}}); res.Total != 0 {
		t.Errorf("nothing is in stock yet, got %d", res.Total)
	}
	if _, err := env.Store.SetAvailability(t.Context(), hp.ID, true); err != nil {
		t.Fatal(err)
	}
	if res = get(url.Values{"in_stock": {"true"}}); res.Total != 1 || res.Hits[0].ID != hp.ID {
		t.Errorf("in_stock after SetAvailability: %+v", res)
	}
	archived, err := env.Store.Update(t.Context(), hp.ID, catalog.Archive)
	if err != nil {
		t.Fatal(err)
	}
	env.Committed(t.Context(), archived)
	if res = get(url.Values{"q": {"headphones"}}); res.Total != 0 || len(res.Hits) != 0 {
		t.Errorf("archived product found: %+v", res)
	}
}

func TestBadFilters(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Search, env.Log)
	for _, q := range []string{"min_price=abc", "max_price=1.5", "min_price=-1", "min_price=10&max_price=5", "limit=1000",
		"limit=0", "offset=-1", "sort=bogus", "in_stock=maybe", "category=NOT%20A%20SLUG"} {
		w := envtest.Do(t, h, http.MethodGet, "/api/v1/search/products?"+q, "")
		if w.Code != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422: %s", q, w.Code, w.Body)
		}
	}
}

// downIndex stands in for a search backend that cannot answer (Meilisearch
// down or refusing the key): only Search is reached by this handler.
type downIndex struct{ search.Index }

func (downIndex) Search(context.Context, search.Query) (search.Result, error) {
	return search.Result{}, errors.New("dial tcp 127.0.0.1:7700: connection refused")
}

// A backend failure is the 503 search_unavailable problem api/openapi.yaml
// declares, never a 500 and never the cause's text.
func TestBackendDownIsSearchUnavailable(t *testing.T) {
	h := New(downIndex{}, slog.New(slog.DiscardHandler))
	w := envtest.Do(t, h, http.MethodGet, "/api/v1/search/products?q=lamp", "")
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p fnhttp.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Code != string(fault.CodeSearchUnavailable) || p.Status != http.StatusServiceUnavailable {
		t.Errorf("problem %+v, want code %s and status 503", p, fault.CodeSearchUnavailable)
	}
}
