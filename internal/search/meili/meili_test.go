package meili_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/meili"
	"github.com/shopfaas/shop/internal/search/searchtest"
)

func newIndex(t *testing.T, key string) *meili.Index {
	t.Helper()
	srv := httptest.NewServer(newFakeMeili("test-key"))
	t.Cleanup(srv.Close)
	ix, err := meili.New(meili.Config{URL: srv.URL, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// The adapter passes the same behaviour suite as the embedded backend, against
// the fake of Meilisearch's HTTP API.
func TestSuite(t *testing.T) {
	searchtest.Run(t, func(t *testing.T) search.Index { return newIndex(t, "test-key") })
}

// Searching before EnsureSettings fails, as in Meilisearch (price is not yet
// filterable), and a wrong key is refused: the fake is strict enough for the
// suite to mean something.
func TestFakeIsStrict(t *testing.T) {
	ix := newIndex(t, "test-key")
	min := int64(10)
	if _, err := ix.Search(context.Background(), search.Query{MinPrice: &min, Limit: 5, Sort: search.SortPriceAsc}); err == nil {
		t.Error("search on unconfigured attributes succeeded")
	}
	if err := newIndex(t, "wrong").EnsureSettings(context.Background()); err == nil {
		t.Error("wrong API key accepted")
	}
}

func TestFilter(t *testing.T) {
	min, max, in := int64(100), int64(200), true
	got := meili.Filter(search.Query{Category: "home-audio", MinPrice: &min, MaxPrice: &max, InStock: &in})
	want := `archived = false AND category = "home-audio" AND price >= 100 AND price <= 200 AND in_stock = true`
	if got != want {
		t.Errorf("Filter = %s, want %s", got, want)
	}
}
