package function

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/orders/saga"
	"github.com/shopfaas/shop/internal/telemetry"
)

// recoverer answers each Recover with its report and err.
type recoverer struct {
	rep saga.Report
	err error
}

func (r *recoverer) Recover(context.Context, int) (saga.Report, error) { return r.rep, r.err }

// TestEveryRecoveryRunIsCounted: a run is counted ok only when it drove every
// order it claimed; one that could not drive an order (saga.Report.Errors)
// answers its report but counts as an error, as a run that failed outright
// does, so RecoveryStalled sees an order that is never finished. Until
// 2026-12-05 such a run counted ok.
func TestEveryRecoveryRunIsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	shop := telemetry.NewShop(reg)
	rec := &recoverer{}
	h := New(rec, fntest.Internal(), slog.New(slog.DiscardHandler))
	run := func() int { return fntest.Run(h, fntest.Caller("scheduler"), shop) }
	rec.rep = saga.Report{Driven: 1, Confirmed: 1}
	if code := run(); code != http.StatusOK {
		t.Fatalf("run: %d, want 200", code)
	}
	rec.rep = saga.Report{Driven: 1, Confirmed: 1, Errors: 1}
	if code := run(); code != http.StatusOK {
		t.Fatalf("run with an order it could not drive: %d, want 200 (its report)", code)
	}
	rec.rep, rec.err = saga.Report{}, errors.New("orders database down")
	if code := run(); code != http.StatusInternalServerError {
		t.Fatalf("failing run: %d, want 500", code)
	}
	fntest.Runs(t, reg, "shop_recovery_runs_total", "recover-orders runs, by result: ok or error.", 1, 2)
}
