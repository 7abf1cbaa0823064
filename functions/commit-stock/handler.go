// Package function is commit-stock, an internal function (POST /, internal
// credential required): it turns an order's stock hold into a sale (on_hand and reserved drop), re-taking the stock when the hold had expired (a released hold is final: 409 reservation_released); idempotent by order id. See docs/checkout.md.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventoryenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := inventoryenv.Load(context.Background(), c, log, inventoryenv.Needs{Internal: true})
	if err != nil {
		return nil, err
	}
	return New(d.Store, d.Internal, log), nil
}

// Committer commits an order's reservation; inventorydb.Store implements it.
type Committer interface {
	Commit(ctx context.Context, orderID uuid.UUID) (inventory.Hold, error)
}

// Response is the answer of commit-stock.
type Response struct {
	OrderID uuid.UUID            `json:"order_id"`
	Status  inventory.HoldStatus `json:"status"`
}

// New returns the commit-stock handler over store; it admits only the
// internal callers routes.Table names for it (fnhttp.CheckInternal: 401
// without a valid credential, 403 for another caller).
func New(store Committer, internal *auth.InternalVerifier, log *slog.Logger) http.Handler {
	return fnhttp.OrderCall(log, "commit-stock", internal, func(ctx context.Context, orderID uuid.UUID) (any, error) {
		h, err := store.Commit(ctx, orderID)
		if err != nil {
			return nil, err
		}
		return Response{OrderID: h.OrderID, Status: h.Status}, nil
	})
}
