package search_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/search"
)

// FuzzParseQuery: any query string parses or is refused with a 4xx; never a
// panic, never a 5xx (issue 12: a search query crashed the backend).
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"q=headphones", "q=caf%C3%A9&category=home-audio&min_price=100&max_price=50",
		"sort=price_asc&limit=100&in_stock=true", "limit=-1", "min_price=99999999999999999999", "q=%00", "category=A%20B", "cursor=%FF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if _, err := search.ParseQuery(v); err != nil {
			if s := fnhttp.Status(err); s < http.StatusBadRequest || s >= http.StatusInternalServerError {
				t.Fatalf("%q: %v answers %d, want 4xx", raw, err, s)
			}
		}
	})
}
