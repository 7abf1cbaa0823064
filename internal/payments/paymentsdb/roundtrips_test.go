package paymentsdb_test

import (
	"context"
	"testing"

	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// TestChargeRoundTrips: a successful charge costs the payments database —
// the simulator's ledger included, since it runs in our PostgreSQL — a fixed
// number of round trips and commits (docs/performance.md): the processor's
// record, then the payment inserted captured (payments.Store.Record). One of
// the two commits is durable: the processor's record commits asynchronously
// (SimLedger.Record). The previous version also inserted the payment pending
// before calling the processor: 3 round trips, 2 durable commits. A repeat
// asks the processor again (the key answers the first outcome) and answers
// the stored payment (the no-op insert answers it). The counts are limits: a
// round trip or commit added back fails this test.
func TestChargeRoundTrips(t *testing.T) {
	const maxTrips, maxCommits, maxDurable, maxRepeat = 2, 2, 1, 2
	pool := pgtest.Open(t, paymentsdb.Migrations())
	counted, rt := pgtest.Counted(t, pool)
	svc := payments.NewService(paymentsdb.New(counted), simulator.New(paymentsdb.NewSimLedger(counted), simulator.Config{}),
		payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	p, err := svc.Charge(ctx, req)
	if err != nil || p.Status != payments.StatusCaptured {
		t.Fatalf("charge: %+v %v", p, err)
	}
	charge := rt.Counts()
	rt.Reset()
	again, err := svc.Charge(ctx, req)
	if err != nil || again.ProviderRef != p.ProviderRef {
		t.Fatalf("repeat: %+v %v, want %s", again, err, p.ProviderRef)
	}
	repeat := rt.Counts()
	t.Logf("charge %+v, repeat %+v", charge, repeat)
	if charge.Trips > maxTrips || charge.Commits > maxCommits || charge.Durable > maxDurable {
		t.Errorf("charge: %+v, want at most %d round trips, %d commits, %d durable", charge, maxTrips, maxCommits, maxDurable)
	}
	if repeat.Trips > maxRepeat {
		t.Errorf("repeat: %+v, want at most %d round trips", repeat, maxRepeat)
	}
}
