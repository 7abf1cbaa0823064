// Package function is recover-orders, run every minute by the scheduler
// (schedule "*/1 * * * *"): it drives forward every order left pending for
// longer than RECOVER_AFTER (default 2m) — re-running the idempotent steps
// reserve → charge (→ commit when the hold was given back) → confirm, or
// compensating when the charge is declined or the stock is gone — settles
// owed compensations of cancelled orders, takes out of the cart the lines of
// confirmed cart orders whose run died (or Redis refused) before it did, gives
// up on orders still pending after GIVE_UP_AFTER (default 12h: payment_failed,
// reason expired, refunded), and purges expired idempotency keys. Runs may
// overlap safely.
// Internal: POST / (any path) with the scheduler's or an operator's internal
// credential; 401 without a valid one, 403 for any other caller's.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders/ordersenv"
	"github.com/shopfaas/shop/internal/orders/saga"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := ordersenv.Load(context.Background(), c, log, ordersenv.Needs{Saga: true, Caller: "recover-orders", Internal: true})
	if err != nil {
		return nil, err
	}
	return New(d.Saga, d.Internal, log), nil
}

// Recoverer recovers unfinished sagas (saga.Saga).
type Recoverer interface {
	Recover(ctx context.Context, limit int) (saga.Report, error)
}

// batch bounds one run; the next run (a minute later) takes the rest.
const batch = 100

// New returns the function's handler.
func New(rec Recoverer, internal *auth.InternalVerifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, internal, "recover-orders"); err != nil {
			return err
		}
		rep, err := rec.Recover(r.Context(), batch)
		// A run that could not drive an order it claimed (saga.Report.Errors)
		// is counted as an error, as one that failed outright: that order
		// is not being finished.
		telemetry.ShopFrom(r.Context()).Recovery(err != nil || rep.Errors > 0, telemetry.Recovered{Confirmed: rep.Confirmed, Failed: rep.Failed,
			Pending: rep.Pending, Expired: rep.Expired, CartRemovals: rep.CartRemovals, Compensations: rep.Compensations, TakenOver: rep.TakenOver,
			Errors: rep.Errors})
		if err != nil {
			return err
		}
		if rep.Driven > 0 || rep.Purged > 0 || rep.Errors > 0 {
			log.InfoContext(r.Context(), "recovered orders", "driven", rep.Driven, "confirmed", rep.Confirmed,
				"failed", rep.Failed, "still_pending", rep.Pending, "expired", rep.Expired, "cart_removals", rep.CartRemovals,
				"compensations", rep.Compensations, "taken_over", rep.TakenOver, "errors", rep.Errors, "purged_keys", rep.Purged)
		}
		return fnhttp.JSON(w, http.StatusOK, rep)
	}))
	return fnhttp.Routes(mux)
}
