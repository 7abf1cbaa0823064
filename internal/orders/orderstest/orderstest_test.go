package orderstest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/orders/saga"
)

// The fake answers as the real services do where the saga could tell them
// apart (docs/checkout.md, Reservations and Payments): inventory's
// commit-stock refuses a released hold and a restocked (cancelled) order 409
// reservation_released (inventory.Hold.CanCommit) rather than answer
// committed, and takes an expired hold (the fake's Expire, as the sweep
// writes it) again; its release-stock of an order that reserved nothing stores a
// void reservation (inventorydb.Store.Release), so a reserve-stock after it
// is 409 reservation_released and holds nothing; payments' refund-payment of
// an order with no payment voids its charge key (payments.Service.Refund),
// so a charge after it is declined and never captures; and charge-payment
// answers a charge repeated after its refund 402 payment_declined
// (payments.Service.Charge), not the refunded payment.
func TestTheFakeAnswersAsTheRealServices(t *testing.T) {
	ctx := context.Background()
	srv, gw, product := stocked(t, 5)

	t.Run("commit of a restocked order", func(t *testing.T) {
		id := uuid.Must(uuid.NewV7())
		for _, step := range []func() error{
			func() error { return gw.Reserve(ctx, id, []orders.Line{{ProductID: product, Quantity: 2}}) },
			func() error { return gw.Commit(ctx, id) },
			func() error { return gw.Release(ctx, id) }, // restocked
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		if err := gw.Commit(ctx, id); !fault.Is(err, fault.Conflict, fault.CodeReservationReleased) {
			t.Fatalf("commit of a restocked order: %v, want 409 reservation_released", err)
		}
		if onHand, reserved := srv.Stock(product); onHand != 5 || reserved != 0 {
			t.Fatalf("stock on_hand %d reserved %d, want 5 0: the cancelled order took its stock again", onHand, reserved)
		}
	})

	t.Run("commit of a released hold", func(t *testing.T) {
		id := uuid.Must(uuid.NewV7())
		if err := gw.Reserve(ctx, id, []orders.Line{{ProductID: product, Quantity: 2}}); err != nil {
			t.Fatal(err)
		}
		if err := gw.Release(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := gw.Commit(ctx, id); !fault.Is(err, fault.Conflict, fault.CodeReservationReleased) {
			t.Fatalf("commit of a released hold: %v, want 409 reservation_released", err)
		}
		if onHand, reserved := srv.Stock(product); onHand != 5 || reserved != 0 {
			t.Fatalf("stock on_hand %d reserved %d, want 5 0: the released hold took its stock again", onHand, reserved)
		}
	})

	t.Run("commit of an expired hold", func(t *testing.T) {
		id := uuid.Must(uuid.NewV7())
		if err := gw.Reserve(ctx, id, []orders.Line{{ProductID: product, Quantity: 2}}); err != nil {
			t.Fatal(err)
		}
		srv.Expire(id)
		if got := srv.Reservation(id); got != "expired" {
			t.Fatalf("reservation %q after Expire, want expired as the sweep writes it", got)
		}
		if err := gw.Commit(ctx, id); err != nil {
			t.Fatalf("commit of an expired hold: %v, want it taken again", err)
		}
		if onHand, reserved := srv.Stock(product); onHand != 3 || reserved != 0 {
			t.Fatalf("stock on_hand %d reserved %d, want 3 0", onHand, reserved)
		}
		srv.SetStock(product, 5)
	})

	t.Run("reserve after a release of nothing", func(t *testing.T) {
		id := uuid.Must(uuid.NewV7())
		for range 2 { // none both times
			if err := gw.Release(ctx, id); err != nil {
				t.Fatalf("release of an order that reserved nothing: %v", err)
			}
		}
		if err := gw.Reserve(ctx, id, []orders.Line{{ProductID: product, Quantity: 2}}); !fault.Is(err, fault.Conflict, fault.CodeReservationReleased) {
			t.Fatalf("reserve after the release: %v, want 409 reservation_released", err)
		}
		if err := gw.Commit(ctx, id); fault.KindOf(err) != fault.NotFound {
			t.Fatalf("commit after the release: %v, want 404", err)
		}
		if onHand, reserved := srv.Stock(product); onHand != 5 || reserved != 0 {
			t.Fatalf("stock on_hand %d reserved %d, want 5 0: the late reservation held stock", onHand, reserved)
		}
	})

	t.Run("charge after a refund of nothing", func(t *testing.T) {
		id, user := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
		for range 2 { // the second answers as the first: none, nothing refunded
			if err := gw.Refund(ctx, id); err != nil {
				t.Fatalf("refund of an order never charged: %v", err)
			}
		}
		charge := saga.Charge{OrderID: id, UserID: user, Amount: orders.Money{Amount: 1299, Currency: "USD"}, Token: "tok_visa"}
		for range 2 {
			if err := gw.Charge(ctx, charge); !fault.Is(err, fault.PaymentRequired, fault.CodePaymentDeclined) {
				t.Fatalf("charge after the refund voided the key: %v, want 402 payment_declined", err)
			}
		}
		if err := gw.Refund(ctx, id); err != nil {
			t.Fatalf("refund of the declined charge: %v", err)
		}
		if c := srv.Counts(); c.Captures != 0 || c.Refunds != 0 {
			t.Fatalf("captures %d refunds %d, want 0 0", c.Captures, c.Refunds)
		}
		if got := srv.Payment(id); got != "declined" {
			t.Fatalf("payment %q, want declined", got)
		}
	})

	t.Run("charge after its refund", func(t *testing.T) {
		id, user := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
		charge := saga.Charge{OrderID: id, UserID: user, Amount: orders.Money{Amount: 1299, Currency: "USD"}, Token: "tok_visa"}
		before := srv.Counts()
		if err := gw.Charge(ctx, charge); err != nil {
			t.Fatal(err)
		}
		if err := gw.Refund(ctx, id); err != nil {
			t.Fatal(err)
		}
		for range 2 { // as payments.Service.Charge answers a key refunded since: 402, nothing captured again
			if err := gw.Charge(ctx, charge); !fault.Is(err, fault.PaymentRequired, fault.CodePaymentDeclined) {
				t.Fatalf("charge repeated after its refund: %v, want 402 payment_declined", err)
			}
		}
		if c := srv.Counts(); c.Captures-before.Captures != 1 || c.Refunds-before.Refunds != 1 {
			t.Fatalf("captures %d refunds %d, want 1 1", c.Captures-before.Captures, c.Refunds-before.Refunds)
		}
		if got := srv.Payment(id); got != "refunded" {
			t.Fatalf("payment %q, want refunded", got)
		}
	})
}

// release-stock answers the reservation's status after the release, as
// inventorydb.Store.Release does (functions/release-stock): released for a
// hold (and for an expired one, whose release makes it final), restocked for
// a committed order, the same again for a repeated release, none for an
// order that reserved nothing. Until 2026-12-08 the fake answered released
// for every reservation, a restocked one included, so no saga test could
// catch a caller that read the answer wrongly.
func TestTheFakeReleaseAnswersTheHoldsStatus(t *testing.T) {
	ctx := context.Background()
	srv, gw, product := stocked(t, 10)
	release := func(t *testing.T, id uuid.UUID) string {
		t.Helper()
		body := strings.NewReader(`{"order_id":"` + id.String() + `"}`)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/function/release-stock", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(auth.InternalHeader, orderstest.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct {
			OrderID uuid.UUID `json:"order_id"`
			Status  string    `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || got.OrderID != id {
			t.Fatalf("release-stock: %d %+v %v", resp.StatusCode, got, err)
		}
		return got.Status
	}
	reserve := func(t *testing.T, id uuid.UUID) {
		t.Helper()
		if err := gw.Reserve(ctx, id, []orders.Line{{ProductID: product, Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	for name, tt := range map[string]struct {
		before func(t *testing.T, id uuid.UUID)
		want   string
	}{
		"a hold":          {reserve, "released"},
		"an expired hold": {func(t *testing.T, id uuid.UUID) { reserve(t, id); srv.Expire(id) }, "released"},
		"a committed order": {func(t *testing.T, id uuid.UUID) {
			reserve(t, id)
			if err := gw.Commit(ctx, id); err != nil {
				t.Fatal(err)
			}
		}, "restocked"},
		"nothing reserved": {func(*testing.T, uuid.UUID) {}, "none"},
	} {
		t.Run(name, func(t *testing.T) {
			id := uuid.Must(uuid.NewV7())
			tt.before(t, id)
			for _, try := range []string{"first", "repeated"} {
				if got := release(t, id); got != tt.want {
					t.Errorf("%s release: %q, want %q", try, got, tt.want)
				}
			}
		})
	}
}

// stocked is a fake with onHand units of a new product and a gateway to it.
func stocked(t *testing.T, onHand int) (*orderstest.Server, *ordersgw.Gateway, uuid.UUID) {
	t.Helper()
	srv := orderstest.New(t)
	gw, err := ordersgw.New(srv.URL, orderstest.Token, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	product := uuid.Must(uuid.NewV7())
	srv.SetStock(product, onHand)
	return srv, gw, product
}
