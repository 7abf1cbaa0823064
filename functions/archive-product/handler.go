// Package function is archive-product: DELETE /api/v1/products/{id} (admin)
// archives a product and answers 204. An archived product is no longer
// listed, fetched (404) or found by search; its row stays for the orders that
// reference it. Archiving, removing the search document and the
// product.changed.v1 event (archived: true) commit together. A second DELETE
// is 404.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
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

// New returns the function's handler over d.
func New(d *catalogenv.Deps) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("DELETE /api/v1/products/{id}", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if _, err := d.Tokens.RequireAdmin(r); err != nil {
			return err
		}
		id, ok := fnhttp.PathID(r, "id")
		if !ok {
			return fault.E(fault.NotFound, fault.CodeNotFound, "no such product")
		}
		p, err := d.Store.Update(r.Context(), id, catalog.Archive)
		if err != nil {
			return err
		}
		d.Committed(r.Context(), p)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	return fnhttp.Routes(mux)
}
