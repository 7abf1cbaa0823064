// Package function is set-stock: PUT /api/v1/inventory/{product_id} {on_hand}
// sets a product's on-hand level (admin only) and answers the new stock level
// with its ETag. The write is conditional and must say so: If-Match with the
// ETag get-stock answered (412 precondition_failed, nothing written, when the
// level changed since: reservations, the sweep's sales and restocks move it
// too), If-Match: * to overwrite whatever it is, or If-None-Match: * to stock
// a product for the first time; neither is 428 precondition_required.
// If-Match is RFC 9110's, read as update-product reads it
// (fnhttp.ParseIfMatch): "*" or a list of entity tags over every field line,
// one of which must be the current ETag exactly (strong comparison: a weak
// tag never matches); a field that is neither matches nothing (412), and so
// does one sent empty or holding only whitespace and commas, a list of no
// tags: If-Match was sent, so it is 412, never 428.
// The product must exist in the catalog (asked through the gateway); the level
// must be an integer from 0 to inventory.MaxOnHand (else 422, or 400 for a
// non-number) and may not go below the units reserved by orders in progress
// (409 below_reserved). The change commits together with its stock.changed.v1
// event when it takes the product out of stock or brings it back.
package function

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventoryenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := inventoryenv.Load(context.Background(), c, log, inventoryenv.Needs{Tokens: true, Catalog: true})
	if err != nil {
		return nil, err
	}
	return New(d.Catalog, d.Store, d.Tokens, log), nil
}

// Catalog tells whether a product exists (catalogclient.Client):
// fault.NotFound when it is unknown or archived.
type Catalog interface {
	GetProduct(ctx context.Context, id uuid.UUID) (catalogclient.Product, error)
}

// Stock sets stock levels (inventorydb.Store), only when the precondition
// holds on the row as it is when written.
type Stock interface {
	SetOnHand(ctx context.Context, productID uuid.UUID, onHand int, pre inventory.Precondition) (inventory.Stock, error)
}

// request is the body; on_hand is kept raw so that a missing value is told
// apart from a wrong type (422, not 400).
type request struct {
	OnHand json.RawMessage `json:"on_hand"`
}

// New returns the function's handler.
func New(catalog Catalog, stock Stock, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("PUT /api/v1/inventory/{product_id}", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		if _, err := tokens.RequireAdmin(r); err != nil {
			return err
		}
		id, ok := fnhttp.PathID(r, "product_id")
		if !ok {
			return fault.E(fault.NotFound, fault.CodeNotFound, "product not found")
		}
		var req request
		if err := fnhttp.Decode(r, &req, 4<<10); err != nil {
			return err
		}
		onHand, err := inventory.ParseOnHand(req.OnHand)
		if err != nil {
			return err
		}
		// A product that does not exist is 404 whatever the request's
		// precondition: the contract's answer for an id that names nothing.
		if _, err := catalog.GetProduct(r.Context(), id); err != nil {
			if fault.Is(err, fault.NotFound, "") {
				return fault.Wrap(err, fault.NotFound, fault.CodeNotFound, "product not found")
			}
			return err
		}
		ifMatch := fnhttp.ParseIfMatch(r)
		pre, err := inventory.ParsePrecondition(ifMatch, r.Header.Values("If-None-Match"))
		if err != nil {
			return err
		}
		if ifMatch.NamesNoTag() {
			return fnhttp.ErrIfMatchNamesNoTag
		}
		st, err := stock.SetOnHand(r.Context(), id, onHand, pre)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", st.ETag())
		return fnhttp.JSON(w, http.StatusOK, inventory.ViewOf(st))
	}))
	return fnhttp.Routes(mux)
}
