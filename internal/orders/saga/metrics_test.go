package saga_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/telemetry"
)

// The saga's steps feed the shop's domain metrics carried by the request's
// context: a declined charge is a payment decline, a reservation without
// stock a reservation conflict, each attempt a step duration, and the
// releases that follow the decline and the conflict settled compensations.
func TestStepsFeedTheDomainMetrics(t *testing.T) {
	e := setup(t, nil)
	reg := prometheus.NewRegistry()
	ctx := telemetry.WithShop(context.Background(), telemetry.NewShop(reg))

	if res, err := e.saga.Place(ctx, e.user, e.request(1, "tok_chargeDeclined"), ""); err != nil || res.Outcome() != orders.OutcomeDeclined {
		t.Fatalf("declined checkout: %v %v", res.Outcome(), err)
	}
	if res, err := e.saga.Place(ctx, e.user, e.request(6, "tok_visa"), ""); err != nil || res.Outcome() != orders.OutcomeOutOfStock {
		t.Fatalf("out-of-stock checkout: %v %v", res.Outcome(), err)
	}
	want := `
# HELP shop_payment_declines_total Charges the payment processor declined or refused, seen by the checkout saga (create-order and recover-orders).
# TYPE shop_payment_declines_total counter
shop_payment_declines_total 1
# HELP shop_reservation_conflicts_total Reservations refused for want of stock, seen by the checkout saga.
# TYPE shop_reservation_conflicts_total counter
shop_reservation_conflicts_total 1
# HELP shop_saga_compensations_total Compensations (release, refund) by result: owed when one is left for recover-orders, settled when it is done.
# TYPE shop_saga_compensations_total counter
shop_saga_compensations_total{result="owed"} 0
shop_saga_compensations_total{result="settled"} 2
# HELP shop_saga_step_failures_total Saga step attempts that failed, by step and kind: refused (the other service said no) or error (transient; retried).
# TYPE shop_saga_step_failures_total counter
shop_saga_step_failures_total{kind="refused",step="payment.charge"} 1
shop_saga_step_failures_total{kind="refused",step="stock.reserve"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shop_payment_declines_total", "shop_reservation_conflicts_total",
		"shop_saga_compensations_total", "shop_saga_step_failures_total"); err != nil {
		t.Error(err)
	}
	// reserve ok + charge refused + release ok, then reserve refused.
	if n := testutil.CollectAndCount(reg, "shop_saga_step_duration_seconds"); n != 4 {
		t.Errorf("%d step duration series, want 4 (stock.reserve ok and refused, payment.charge refused, stock.release ok)", n)
	}
}

// reserve-stock's reservation_released (an earlier run's hold was given
// back) is a retake the saga continues from (commit-stock takes the stock
// again), not a refusal for want of stock: it counts no reservation conflict
// and no step failure. Until 2026-12-06 every refused stock.reserve counted
// both.
func TestARetakeIsNoReservationConflict(t *testing.T) {
	e := setup(t, nil)
	e.processorDown()
	res, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("checkout: %+v %v; want pending", res, err)
	}
	e.svc.Expire(res.Order.ID)
	e.svc.SetHook(nil)
	e.age(t)
	reg := prometheus.NewRegistry()
	ctx := telemetry.WithShop(context.Background(), telemetry.NewShop(reg))
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Confirmed != 1 {
		t.Fatalf("recover: %+v %v; want the order confirmed", rep, err)
	}
	if !slices.Contains(e.steps(t, res.Order.ID), "stock.reserve:refused") {
		t.Fatal("reserve-stock did not answer reservation_released: the test proves nothing")
	}
	want := `
# HELP shop_reservation_conflicts_total Reservations refused for want of stock, seen by the checkout saga.
# TYPE shop_reservation_conflicts_total counter
shop_reservation_conflicts_total 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shop_reservation_conflicts_total", "shop_saga_step_failures_total"); err != nil {
		t.Error(err)
	}
	// Any other refusal of reserve-stock (here a 422) is a step failure,
	// and still no conflict: only out_of_stock is one.
	reg = prometheus.NewRegistry()
	ctx = telemetry.WithShop(context.Background(), telemetry.NewShop(reg))
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "reserve-stock" {
			return 0, http.StatusUnprocessableEntity, 0
		}
		return 0, 0, 0
	})
	if res, err := e.saga.Place(ctx, e.user, e.request(1, "tok_visa"), ""); err != nil || res.Order.Reason != orders.ReasonRejected {
		t.Fatalf("checkout refused by reserve-stock: %+v %v; want it rejected", res, err)
	}
	want += `# HELP shop_saga_step_failures_total Saga step attempts that failed, by step and kind: refused (the other service said no) or error (transient; retried).
# TYPE shop_saga_step_failures_total counter
shop_saga_step_failures_total{kind="refused",step="stock.reserve"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shop_reservation_conflicts_total", "shop_saga_step_failures_total"); err != nil {
		t.Error(err)
	}
}
