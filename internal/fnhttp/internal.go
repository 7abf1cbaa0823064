package fnhttp

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
)

// OrderCall serves an internal function whose request is {"order_id": "…"}
// (POST /): it refuses callers without the internal credential (401), decodes
// the order id strictly (4xx on bad input) and answers 200 with do's result as
// JSON, or the problem do returns.
func OrderCall(log *slog.Logger, credential string, do func(ctx context.Context, orderID uuid.UUID) (any, error)) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		if err := auth.CheckInternal(r, credential); err != nil {
			return err
		}
		var body struct {
			OrderID uuid.UUID `json:"order_id"`
		}
		if err := Decode(r, &body, 0); err != nil {
			return err
		}
		if body.OrderID == uuid.Nil {
			return fault.E(fault.Invalid, fault.CodeInvalidRequest, "order_id is required")
		}
		out, err := do(r.Context(), body.OrderID)
		if err != nil {
			return err
		}
		return JSON(w, http.StatusOK, out)
	}))
	return Routes(mux)
}
