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
// does, so RecoveryStalled sees an order that is never finished, and each
// such order counts in shop_recovered_orders_total{result="error"}. Until
// 2026-12-05 such a run counted ok, and until 2026-12-05's seventeenth
// session its orders counted nowhere.
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
	rec.rep = saga.Report{Driven: 3, Confirmed: 1, Errors: 2}
	if code := run(); code != http.StatusOK {
		t.Fatalf("run with an order it could not drive: %d, want 200 (its report)", code)
	}
	rec.rep, rec.err = saga.Report{}, errors.New("orders database down")
	if code := run(); code != http.StatusInternalServerError {
		t.Fatalf("failing run: %d, want 500", code)
	}
	fntest.Runs(t, reg, "shop_recovery_runs_total", "recover-orders runs, by result: ok or error.", 1, 2)
	for result, want := range map[string]float64{"confirmed": 2, "error": 2} {
		if got := recovered(t, reg, result); got != want {
			t.Errorf("shop_recovered_orders_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// recovered reads shop_recovered_orders_total{result=result} from reg.
func recovered(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "shop_recovered_orders_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("shop_recovered_orders_total{result=%q} is not exported", result)
	return 0
}
