// Package function is search-products: GET /api/v1/search/products?q=&category=
// &min_price=&max_price=&in_stock=&sort=&limit=&offset= answers
// {hits, total, facets:{category:{name:count}}} to anyone. Search is typo
// tolerant; sort is relevance (default), price_asc, price_desc or popularity;
// any bad parameter is 422. The backend is Meilisearch when MEILI_URL is set,
// searched with the meili-search-key secret, a key that may do nothing else
// (the writers apply the index settings), else the embedded PostgreSQL index.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/search"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := catalogenv.Load(context.Background(), c, log, catalogenv.Needs{Search: true, Reader: true})
	if err != nil {
		return nil, err
	}
	return New(d.Search, log), nil
}

// New returns the function's handler over the index.
func New(index search.Index, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/search/products", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		q, err := search.ParseQuery(r.URL.Query())
		if err != nil {
			return err
		}
		res, err := index.Search(r.Context(), q)
		if err != nil {
			return fault.Wrap(err, fault.Unavailable, fault.CodeSearchUnavailable, "search is temporarily unavailable")
		}
		w.Header().Set("Cache-Control", "no-cache")
		return fnhttp.JSON(w, http.StatusOK, res)
	}))
	return fnhttp.Routes(mux)
}
