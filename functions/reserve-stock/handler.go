// Package function is reserve-stock, an internal function (POST /, internal
// credential required): it holds stock for every line of an order in one
// transaction, idempotently by order id. See docs/checkout.md.
package function

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/ids"
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

// Reserver holds stock for orders; inventorydb.Store implements it.
type Reserver interface {
	Reserve(ctx context.Context, req inventory.HoldRequest) (inventory.Hold, error)
}

// request is the body of reserve-stock. Its ids decode only in their
// canonical form (ids.CanonicalID: 400 invalid_json otherwise), as
// docs/security.md says of every id a client sends.
type request struct {
	OrderID    ids.CanonicalID `json:"order_id"`
	Lines      []line          `json:"lines"`
	TTLSeconds int             `json:"ttl_seconds"`
}

// line is an inventory.Line as the body writes it.
type line struct {
	ProductID ids.CanonicalID `json:"product_id"`
	Quantity  int             `json:"quantity"`
}

// Response is the answer of reserve-stock.
type Response struct {
	OrderID   uuid.UUID            `json:"order_id"`
	Status    inventory.HoldStatus `json:"status"`
	ExpiresAt time.Time            `json:"expires_at"`
}

// New returns the reserve-stock handler over store; it admits only the
// internal callers routes.Table names for it (fnhttp.CheckInternal: 401
// without a valid credential, 403 for another caller).
func New(store Reserver, internal *auth.InternalVerifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, internal, "reserve-stock"); err != nil {
			return err
		}
		var body request
		if err := fnhttp.Decode(r, &body, 0); err != nil {
			return err
		}
		lines := make([]inventory.Line, len(body.Lines))
		for i, l := range body.Lines {
			lines[i] = inventory.Line{ProductID: l.ProductID.UUID(), Quantity: l.Quantity}
		}
		req, err := inventory.NewHoldRequest(body.OrderID.UUID(), lines, body.TTLSeconds)
		if err != nil {
			return err
		}
		h, err := store.Reserve(r.Context(), req)
		if err != nil {
			return err
		}
		return fnhttp.JSON(w, http.StatusOK, Response{OrderID: h.OrderID, Status: h.Status, ExpiresAt: h.ExpiresAt})
	}))
	return fnhttp.Routes(mux)
}
