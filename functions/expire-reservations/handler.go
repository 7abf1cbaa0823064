// Package function is expire-reservations, the scheduled sweep (annotation
// schedule "*/1 * * * *"; POST / with any body, internal credential
// required). It settles held holds: the checkout only reserves stock, and the
// sweep turns the hold of a confirmed order into a sale, gives back the hold
// of a failed or cancelled order, keeps the hold of a pending one (its order
// may still be confirmed; recover-orders finishes it), and gives back an
// order the orders service does not know only once its hold is past its
// expiry, so an abandoned checkout never keeps stock away from other
// customers. A run settles at most MaxBatches batches, begins none it has no
// time left to finish before its deadline, and the next goes on where it
// stopped. A hold is due once it is older than the settle delay
// (SETTLE_AFTER, default 30s, from 1s to 1h, the longest hold: a value out
// of range fails the build; ?settle_after_seconds=N overrides it for one
// run, N from 0 to 3600: dev/chaos settles at once with 0). For every batch
// of due holds it asks order-statuses once, then settles the batch in one
// inventory transaction (inventorydb.Store.Settle). When the orders service
// does not answer, nothing changes: the stock stays reserved until the next
// run. Concurrent sweeps are safe.
//
// Then, with time left, it deletes the reservations that ended (released,
// expired, restocked, void) more than inventorydb.EndedRetention (30 days)
// ago, at most inventorydb.PruneBatches batches a run (Store.Prune); a
// committed one is kept, since its order may still be cancelled.
//
// The answer counts the holds it sold (settled), gave back for a failed or
// cancelled order (released) and gave back past their expiry (expired), and
// the ended reservations it deleted (pruned). Each
// run is counted in shop_reservation_sweeps_total by result (ok, error).
package function

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/inventory/inventoryenv"
	"github.com/shopfaas/shop/internal/inventory/orderstatus"
	"github.com/shopfaas/shop/internal/telemetry"
)

// DefaultSettleAfter is how old a hold must be before the sweep settles it
// (SETTLE_AFTER): most checkouts are over by then, so a sweep rarely asks
// about a pending order.
const DefaultSettleAfter = 30 * time.Second

// MinSettleAfter is the shortest SETTLE_AFTER. A checkout is over in well
// under a second (docs/performance.md), so a younger hold is nearly always
// one in flight, whose order is pending or not written yet and which the
// sweep keeps: with no delay every run asked order-statuses about every
// checkout in flight, for nothing. One run may still settle at once
// (?settle_after_seconds=0, as dev/chaos and the tests do).
const MinSettleAfter = time.Second

// MaxSettleAfter bounds SETTLE_AFTER and ?settle_after_seconds: the longest
// hold (inventory.MaxHoldTTL). A hold is looked at only once it is that old,
// so a longer delay kept the stock of an abandoned checkout from other
// customers past its hold's expiry, and a confirmed order's units reserved
// rather than sold, for as long as it said.
const MaxSettleAfter = inventory.MaxHoldTTL

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
// SETTLE_AFTER (default DefaultSettleAfter, MinSettleAfter to
// MaxSettleAfter) out of its bounds fails the build with the other problems
// of the configuration.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	settleAfter := c.Duration("SETTLE_AFTER", DefaultSettleAfter)
	switch {
	case settleAfter > MaxSettleAfter:
		c.Fail("SETTLE_AFTER", fmt.Errorf("%s is longer than the longest hold, %s (inventory.MaxHoldTTL)", settleAfter, MaxSettleAfter))
	case settleAfter < MinSettleAfter:
		c.Fail("SETTLE_AFTER", fmt.Errorf("%s is shorter than %s: every run would ask order-statuses about every checkout in flight "+
			"(to settle at once for one run, call it with ?settle_after_seconds=0)", settleAfter, MinSettleAfter))
	}
	d, err := inventoryenv.Load(context.Background(), c, log, inventoryenv.Needs{Internal: true, OrdersCaller: "expire-reservations"})
	if err != nil {
		return nil, err
	}
	return New(d.Store, d.Orders.Statuses, settleAfter, d.Internal, log), nil
}

// Settler settles due holds and keeps where a run stopped;
// inventorydb.Store implements it.
type Settler interface {
	Settle(ctx context.Context, cur inventory.SettleCursor, settleAfter time.Duration, limit int, statuses inventorydb.Statuses) (inventory.Settlement, error)
	SweepCursor(ctx context.Context) (inventory.SettleCursor, error)
	SaveSweepCursor(ctx context.Context, cur inventory.SettleCursor) error
	Prune(ctx context.Context, olderThan time.Duration, maxBatches int) (int64, error)
}

// Batch is how many holds one status lookup and one transaction settle (at
// most what order-statuses answers at once); MaxBatches bounds one run, the
// next run (a minute later) goes on where it stopped (Settler.SweepCursor),
// wrapping around to the oldest due hold once it reaches the newest: the
// holds a run keeps (pending orders) are looked at again once per round, and
// however many they are, no hold behind them waits for ever.
const (
	Batch      = orderstatus.MaxIDs
	MaxBatches = 20
)

// batch and maxBatches are Batch and MaxBatches; a test shrinks them.
var batch, maxBatches = Batch, MaxBatches

// batchBudget is the time a batch may take: its status lookup (orderstatus's
// 10 s) and its transaction. A run begins no batch after its first unless
// that much is left before its request's deadline: a batch the deadline cuts
// is rolled back, and a run that always reached its deadline asked about the
// same holds run after run. A test shrinks it.
var batchBudget = 12 * time.Second

// pruneBudget is the time left before the request's deadline that a run
// needs to prune (inventorydb.Store.Prune, at most PruneBatches batches);
// with less it prunes nothing and a later run does.
const pruneBudget = 5 * time.Second

// pruneMargin is how long before the request's deadline a prune is cut, so
// that the run's answer is written before it.
const pruneMargin = 2 * time.Second

// saveBudget bounds the save of where the run stopped, on a context of its
// own: a run cut by its deadline still records it, or the next would start
// at the same place again. It is less than the 2 s a function's
// write_timeout leaves after its exec_timeout, so the answer still goes out.
const saveBudget = time.Second

// Response is the answer of expire-reservations: how many holds the run
// sold, released (failed or cancelled orders) and expired (unknown orders,
// past expires_at), and how many ended reservations it deleted (pruned, also
// what a prune that failed deleted before it failed).
type Response struct {
	Settled  int   `json:"settled"`
	Released int   `json:"released"`
	Expired  int   `json:"expired"`
	Pruned   int64 `json:"pruned"`
}

// New returns the sweep handler over store, asking statuses the orders'
// statuses and settling holds older than settleAfter; it admits only the
// internal callers routes.Table names for it (fnhttp.CheckInternal: 401,
// 403). The body is ignored.
func New(store Settler, statuses inventorydb.Statuses, settleAfter time.Duration, internal *auth.InternalVerifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, internal, "expire-reservations"); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, fnhttp.MaxBody))
		// An absent or empty settle_after_seconds (-1) is the configured
		// delay: an empty one used to settle every hold at once.
		after := settleAfter
		n, err := fnhttp.QueryInt(r, "settle_after_seconds", -1, 0, int(MaxSettleAfter/time.Second))
		if err != nil {
			return err
		}
		if n >= 0 {
			after = time.Duration(n) * time.Second
		}
		var out Response
		cur, err := store.SweepCursor(r.Context())
		if err != nil {
			telemetry.ShopFrom(r.Context()).Sweep(true)
			return err
		}
		// wrapped: this run has gone past the newest due hold back to the
		// oldest (or started there); reaching the newest again ends a round.
		wrapped := cur == inventory.SettleCursor{}
		deadline, bounded := r.Context().Deadline()
		for i := range maxBatches {
			if i > 0 && bounded && time.Until(deadline) < batchBudget {
				break // the next run goes on from cur
			}
			var s inventory.Settlement
			s, err = store.Settle(r.Context(), cur, after, batch, statuses)
			out.Settled += s.Settled
			out.Released += s.Released
			out.Expired += s.Expired
			if err != nil {
				break
			}
			if s.Scanned < batch {
				cur = inventory.SettleCursor{}
				if wrapped {
					break
				}
				wrapped = true
				continue
			}
			cur = s.Next
		}
		// Where the next run starts: after the last batch settled, or at
		// the failed one, which it tries again; saved even when the
		// request's deadline cut that batch.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), saveBudget)
		serr := store.SaveSweepCursor(sctx, cur)
		cancel()
		if serr != nil && err == nil {
			err = serr
		}
		// Then the reservations that ended long ago go (a run that failed,
		// or has no time left, leaves them to a later one). A failed prune
		// fails no run: the holds are settled, and the rows wait.
		if err == nil && (!bounded || time.Until(deadline) >= pruneBudget) {
			// Ended pruneMargin before the deadline, so that the answer
			// goes out before the watchdog's 504 however slow the
			// deletes (a cut prune rolls its batch back: nothing lost).
			pctx, cancel := r.Context(), context.CancelFunc(func() {})
			if bounded {
				pctx, cancel = context.WithDeadline(r.Context(), deadline.Add(-pruneMargin))
			}
			var perr error
			out.Pruned, perr = store.Prune(pctx, inventorydb.EndedRetention, inventorydb.PruneBatches)
			cancel()
			if perr != nil {
				log.WarnContext(r.Context(), "ended reservations not pruned", "pruned", out.Pruned, "err", perr)
			}
		}
		// Counted ok or error, so ReservationSweepStalled sees a sweep
		// that never succeeds (a refused caller above is no run).
		telemetry.ShopFrom(r.Context()).Sweep(err != nil)
		if out != (Response{}) {
			log.InfoContext(r.Context(), "reservations settled", "settled", out.Settled, "released", out.Released, "expired", out.Expired, "pruned", out.Pruned)
		}
		if err != nil {
			return err
		}
		return fnhttp.JSON(w, http.StatusOK, out)
	}))
	return fnhttp.Routes(mux)
}
