// Package function is list-products: GET /api/v1/products?category=&limit=&cursor=
// lists live products to anyone, newest first (by UUIDv7 id, so the order is
// stable while products are added), as {items, next_cursor}. next_cursor is
// opaque and null on the last page; a cursor not written as the list writes
// one is 422.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := catalogenv.Load(context.Background(), c, log, catalogenv.Needs{Reader: true})
	if err != nil {
		return nil, err
	}
	return New(d), nil
}

// Page is the list response.
type Page struct {
	Items      []catalog.Product `json:"items"`
	NextCursor *string           `json:"next_cursor"`
}

// New returns the function's handler over d (Store and Log).
func New(d *catalogenv.Deps) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/products", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		limit, err := fnhttp.QueryInt(r, "limit", catalog.DefaultLimit, 1, catalog.MaxLimit)
		if err != nil {
			return err
		}
		category := q.Get("category")
		if err := catalog.ValidateCategory(category); err != nil {
			return err
		}
		after, err := catalog.DecodeCursor(q.Get("cursor"))
		if err != nil {
			return err
		}
		items, more, err := d.Store.List(r.Context(), category, after, limit)
		if err != nil {
			return err
		}
		page := Page{Items: items}
		if page.Items == nil {
			page.Items = []catalog.Product{}
		}
		if more {
			c := catalog.EncodeCursor(items[len(items)-1].ID)
			page.NextCursor = &c
		}
		w.Header().Set("Cache-Control", "no-cache")
		return fnhttp.JSON(w, http.StatusOK, page)
	}))
	return fnhttp.Routes(mux)
}
