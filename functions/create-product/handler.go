// Package function is create-product: POST /api/v1/products (admin) creates a
// product and answers 201 with it. The product, its search document and its
// product.changed.v1 event are written in one transaction; a taken SKU is
// 409 sku_taken.
package function

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := catalogenv.Load(context.Background(), c, log, catalogenv.Needs{Tokens: true, Cache: true, Index: true})
	if err != nil {
		return nil, err
	}
	return New(d), nil
}

// New returns the function's handler over d (Store, Tokens, Log; Cache and
// External are used after commit when set).
func New(d *catalogenv.Deps) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/products", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if _, err := d.Tokens.RequireAdmin(r); err != nil {
			return err
		}
		var draft catalog.Draft
		if err := fnhttp.Decode(r, &draft, fnhttp.MaxBody); err != nil {
			return err
		}
		p, err := catalog.NewProduct(draft, time.Now())
		if err != nil {
			return err
		}
		if p, err = d.Store.Create(r.Context(), p); err != nil {
			return err
		}
		d.Committed(r.Context(), p)
		w.Header().Set("Location", "/api/v1/products/"+p.ID.String())
		w.Header().Set("ETag", p.ETag())
		return fnhttp.JSON(w, http.StatusCreated, p)
	}))
	return fnhttp.Routes(mux)
}
