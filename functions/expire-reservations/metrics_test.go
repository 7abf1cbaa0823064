package function

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/telemetry"
)

// settler answers each Settle with its err, and keeps no cursor.
type settler struct{ err error }

func (s *settler) Settle(context.Context, inventory.SettleCursor, time.Duration, int, inventorydb.Statuses) (inventory.Settlement, error) {
	return inventory.Settlement{}, s.err
}

func (s *settler) SweepCursor(context.Context) (inventory.SettleCursor, error) {
	return inventory.SettleCursor{}, nil
}

func (s *settler) SaveSweepCursor(context.Context, inventory.SettleCursor) error { return nil }
func (s *settler) Prune(context.Context, time.Duration, int) (int64, error)      { return 0, nil }

// TestEverySweepIsCounted: each run the sweep makes is counted ok or error
// in shop_reservation_sweeps_total (both series from the first run on), so
// ReservationSweepStalled sees when no run succeeds; a caller refused
// before the run (401) is no run and counts nothing.
func TestEverySweepIsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	shop := telemetry.NewShop(reg)
	store := &settler{}
	h := New(store, nil, DefaultSettleAfter, fntest.Internal(), slog.New(slog.DiscardHandler))
	sweep := func(cred string) int { return fntest.Run(h, cred, shop) }
	if code := sweep(""); code != http.StatusUnauthorized {
		t.Fatalf("no credential: %d, want 401", code)
	}
	if n := testutil.CollectAndCount(reg, "shop_reservation_sweeps_total"); n != 0 {
		t.Errorf("a refused caller made %d series, want none", n)
	}
	for range 2 {
		if code := sweep(credential); code != http.StatusOK {
			t.Fatalf("sweep: %d, want 200", code)
		}
	}
	store.err = errors.New("inventory database down")
	if code := sweep(credential); code != http.StatusInternalServerError {
		t.Fatalf("failing sweep: %d, want 500", code)
	}
	fntest.Runs(t, reg, "shop_reservation_sweeps_total", "expire-reservations runs, by result: ok or error.", 2, 1)
}
