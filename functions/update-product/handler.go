// Package function is update-product: PATCH /api/v1/products/{id} (admin)
// changes the listed fields of a product with JSON merge patch semantics and
// answers 200 with the product. An optional If-Match (the ETag of GET) makes
// the update conditional: 412 when the product changed meanwhile. If-Match is
// RFC 9110's (fnhttp.ParseIfMatch): "*" or a list of entity tags, one of
// which must be the current ETag exactly (strong comparison: a weak tag never
// matches). A field sent empty, or holding only whitespace and commas, is a
// list of no tags: the update stays conditional and is 412, never made
// unconditionally. The change, the search document and the product.changed.v1
// event commit together; the cached copy is invalidated after the commit, so
// the next GET shows it. A 412 for a tag of another version invalidates it
// too (a compare-and-set on the row's version: a no-op when the cache holds
// that version already), so an ETag that a stale cached copy answered is
// refused once, not until the cache's TTL.
package function

import (
	"context"
	"log/slog"
	"net/http"
	"time"

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

var errNotFound = fault.E(fault.NotFound, fault.CodeNotFound, "no such product")

// New returns the function's handler over d.
func New(d *catalogenv.Deps) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("PATCH /api/v1/products/{id}", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if _, err := d.Tokens.RequireAdmin(r); err != nil {
			return err
		}
		id, ok := fnhttp.PathID(r, "id")
		if !ok {
			return errNotFound
		}
		var patch catalog.Patch
		if err := fnhttp.Decode(r, &patch, fnhttp.MaxBody); err != nil {
			return err
		}
		ifMatch := fnhttp.ParseIfMatch(r)
		var refused catalog.Product // the row a stale If-Match was refused on
		p, err := d.Store.Update(r.Context(), id, func(p catalog.Product, now time.Time) (catalog.Product, error) {
			if p.Archived {
				return p, errNotFound
			}
			if ifMatch.NamesNoTag() {
				return p, fnhttp.ErrIfMatchNamesNoTag
			}
			if !ifMatch.Matches(p.ETag()) {
				refused = p
				return p, fault.E(fault.PreconditionFailed, fault.CodePreconditionFailed, "the product changed since it was read")
			}
			return catalog.Apply(p, patch, now)
		})
		if refused.Version > 0 {
			// The tag may have come from a cached copy older than the row
			// (a sale whose cache write failed leaves one until its TTL):
			// a marker of the row's version makes the next GET answer the
			// current ETag instead of the one just refused.
			cctx, cancel := catalogenv.CacheContext(r.Context())
			d.Invalidate(cctx, refused)
			cancel()
		}
		if err != nil {
			return err
		}
		d.Committed(r.Context(), p)
		w.Header().Set("ETag", p.ETag())
		return fnhttp.JSON(w, http.StatusOK, p)
	}))
	return fnhttp.Routes(mux)
}
