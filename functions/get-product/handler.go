// Package function is get-product: GET /api/v1/products/{id} answers a live
// product (with sold_count) to anyone, or 404 (archived, unknown or not a
// UUID; for a UUID the problem's product_id member names it).
//
// Reads are cache-aside in Redis: entries carry the product's version, and
// after each commit the write functions replace them with an invalidation
// marker, or after a sale (update-product-stats) with the product as the sale
// committed it, so an update is visible on the very next GET and a slow
// reader can never write an older copy back. The ETag is strong and changes
// with every version; If-None-Match with it answers 304. Redis being down
// only costs a warning: the product is then read from PostgreSQL.
package function

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := catalogenv.Load(context.Background(), c, log, catalogenv.Needs{Cache: true, Reader: true})
	if err != nil {
		return nil, err
	}
	return New(d), nil
}

// etag is catalog.Product.ETag for a cached entry.
func etag(id uuid.UUID, version int64) string { return fmt.Sprintf(`"%s-%d"`, id, version) }

// notModified reports whether the If-None-Match header lists tag (weak
// comparison, as RFC 9110 requires for If-None-Match) or is "*".
func notModified(r *http.Request, tag string) bool {
	for _, h := range r.Header.Values("If-None-Match") {
		for _, t := range strings.Split(h, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == tag || t == "*" {
				return true
			}
		}
	}
	return false
}

func write(w http.ResponseWriter, r *http.Request, tag string, body []byte) {
	w.Header().Set("ETag", tag)
	w.Header().Set("Cache-Control", "no-cache")
	if notModified(r, tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// New returns the function's handler over d (Store, Log and, when set, Cache).
func New(d *catalogenv.Deps) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/products/{id}", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		id, ok := fnhttp.PathID(r, "id")
		if !ok {
			return fault.E(fault.NotFound, fault.CodeNotFound, "no such product")
		}
		if body, version, ok := d.Cached(r.Context(), id.String()); ok {
			write(w, r, etag(id, version), body)
			return nil
		}
		p, err := d.Store.Get(r.Context(), id)
		if fault.Is(err, fault.NotFound, "") {
			return fnhttp.NamedNotFound(err, "no such product", "product_id", id) // the catalog client reads it
		}
		if err != nil {
			return err
		}
		d.Remember(r.Context(), p)
		body, err := json.Marshal(p) // byte-identical to the cached entry
		if err != nil {
			return fault.Internalf("encode product: %w", err)
		}
		write(w, r, p.ETag(), body)
		return nil
	}))
	return fnhttp.Routes(mux)
}
