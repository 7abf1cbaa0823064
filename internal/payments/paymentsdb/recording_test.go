package paymentsdb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/simulator"
)

// losing is a store that fails the next Record it is asked for after the
// processor answered: charge-payment dying between the processor and its
// one insert.
type losing struct {
	payments.Store
	lose atomic.Bool
}

func (l *losing) Record(ctx context.Context, p payments.Payment, res payments.Result) (payments.Payment, error) {
	if l.lose.CompareAndSwap(true, false) {
		return payments.Payment{}, fault.E(fault.Unavailable, fault.CodeUnavailable, "lost")
	}
	return l.Store.Record(ctx, p, res)
}

// entry returns the simulator's charge entry of the order.
func (f *fixture) entry(t *testing.T, orderID uuid.UUID) (simulator.Entry, bool) {
	t.Helper()
	e, found, err := f.ledger.Find(context.Background(), payments.ChargeKey(orderID))
	if err != nil {
		t.Fatal(err)
	}
	return e, found
}

// A charge the processor captured whose recording was lost (no payment row)
// is found by Refund and refunded exactly once; a retried Charge records the
// same capture before the refund, and never a second one; after the refund it
// is refused, 402 saying refunded (Processor.Charge), the row left as it is.
func TestLostRecordingIsFoundAndRefundedOnce(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	store := &losing{Store: f.store}
	svc := payments.NewService(store, f.proc, payments.ServiceConfig{})
	ctx := context.Background()

	// Refund first, then the retried charge.
	req := chargeReq(simulator.TokenVisa)
	store.lose.Store(true)
	if _, err := svc.Charge(ctx, req); !fault.Is(err, fault.Unavailable, "") {
		t.Fatalf("charge whose recording is lost: %v", err)
	}
	if _, err := f.store.ByOrder(ctx, req.OrderID); !fault.Is(err, fault.NotFound, "") {
		t.Fatalf("a row was stored: %v", err)
	}
	charged, _ := f.entry(t, req.OrderID)
	refunded, err := svc.Refund(ctx, req.OrderID)
	if err != nil || refunded.Status != payments.StatusRefunded || refunded.ProviderRef != charged.Reference ||
		refunded.UserID != req.UserID || refunded.Amount != req.Amount {
		t.Fatalf("refund of the lost charge: %+v %v, want refunded %s of %v by %s", refunded, err, charged.Reference, req.Amount, req.UserID)
	}
	for range 2 {
		if p, err := svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusRefunded || p.ID != refunded.ID {
			t.Errorf("refund again: %+v %v", p, err)
		}
	}
	if p, err := svc.Charge(ctx, req); !fault.Is(err, fault.PaymentRequired, fault.CodePaymentDeclined) ||
		!strings.Contains(fmt.Sprint(err), "refunded") {
		t.Errorf("charge retried after the refund: %+v %v, want 402 payment_declined saying refunded", p, err)
	}
	if p, err := f.store.ByOrder(ctx, req.OrderID); err != nil || p.Status != payments.StatusRefunded || p.ID != refunded.ID {
		t.Errorf("the row after the retried charge: %+v %v, want the refunded payment", p, err)
	}
	if c, r := f.count(t, "charge"), f.count(t, "refund"); c != 1 || r != 1 {
		t.Errorf("simulator: %d charges, %d refunds; want 1 1", c, r)
	}

	// The retried charge first: it records the same capture, then Refund
	// refunds it.
	req = chargeReq(simulator.TokenMastercard)
	store.lose.Store(true)
	if _, err := svc.Charge(ctx, req); err == nil {
		t.Fatal("charge whose recording is lost succeeded")
	}
	charged, _ = f.entry(t, req.OrderID)
	p, err := svc.Charge(ctx, req)
	if err != nil || p.Status != payments.StatusCaptured || p.ProviderRef != charged.Reference {
		t.Fatalf("retried charge: %+v %v, want captured %s", p, err, charged.Reference)
	}
	if p, err := svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusRefunded {
		t.Errorf("refund: %+v %v", p, err)
	}
	if c, r := f.count(t, "charge"), f.count(t, "refund"); c != 2 || r != 2 {
		t.Errorf("simulator: %d charges, %d refunds; want 2 2", c, r)
	}
}

// A refund that runs while the order's charge is in flight (no payment row
// yet) voids the order's key at the processor: the charge that lands after
// it is declined, nothing is captured, and there is nothing to refund.
func TestRefundBeforeTheChargeLandsVoidsIt(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	if p, err := f.svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusNone {
		t.Fatalf("refund of an order without a payment: %+v %v", p, err)
	}
	for range 2 {
		_, err := f.svc.Charge(ctx, req)
		if !fault.Is(err, fault.PaymentRequired, "payment_declined") {
			t.Fatalf("charge after the refund: %v, want payment_declined", err)
		}
	}
	if p, err := f.store.ByOrder(ctx, req.OrderID); err != nil || p.Status != payments.StatusDeclined || p.DeclineCode != payments.VoidedCode {
		t.Errorf("stored: %+v %v, want declined %s", p, err, payments.VoidedCode)
	}
	if p, err := f.svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusDeclined {
		t.Errorf("refund again: %+v %v, want nothing to refund", p.Status, err)
	}
	if e, _ := f.entry(t, req.OrderID); e.Outcome != payments.OutcomeDeclined || e.DeclineCode != payments.VoidedCode {
		t.Errorf("simulator entry %+v, want the void", e)
	}
	if r := f.count(t, "refund"); r != 0 {
		t.Errorf("simulator: %d refunds, want 0", r)
	}

	// A pending row of the previous version whose attempt never reached the
	// processor: the refund discards it and voids the key, so the charge
	// that lands later cannot capture either.
	req = chargeReq(simulator.TokenVisa)
	insertPending(t, f, payments.Payment{ID: uuid.Must(uuid.NewV7()), OrderID: req.OrderID, UserID: req.UserID,
		Amount: req.Amount}, 0)
	if p, err := f.svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusNone {
		t.Fatalf("refund of a crashed pending charge: %+v %v", p, err)
	}
	if _, err := f.svc.Charge(ctx, req); !fault.Is(err, fault.PaymentRequired, "payment_declined") {
		t.Errorf("charge after the refund: %v, want payment_declined", err)
	}
	if e, _ := f.entry(t, req.OrderID); e.Outcome != payments.OutcomeDeclined {
		t.Errorf("simulator entry %+v, want the void", e)
	}
}

// Concurrent twins of a charge agree on one capture; with a refund racing
// them, either the refund voids the key first (every twin declined) or it
// finds the capture and refunds it once (a twin that reaches the processor
// after that refund is refused, 402 saying refunded). A capture is never left
// unrefunded.
func TestTwinsAndARacingRefund(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{PollInterval: 20 * time.Millisecond})
	ctx := context.Background()
	const twins = 16
	var captured, voided int
	for round := range 12 {
		withRefund := round > 0
		req := chargeReq(simulator.TokenVisa)
		got := make([]payments.Payment, twins)
		errs := make([]error, twins)
		var refund payments.Payment
		var refundErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range twins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if withRefund && round%2 == 1 { // the refund gets a head start
					time.Sleep(time.Duration(1+i%4) * time.Millisecond)
				}
				got[i], errs[i] = f.svc.Charge(ctx, req)
			}()
		}
		if withRefund {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if round%2 == 0 { // the twins get a head start
					time.Sleep(time.Duration(round/2) * time.Millisecond)
				}
				refund, refundErr = f.svc.Refund(ctx, req.OrderID)
			}()
		}
		close(start)
		wg.Wait()
		if refundErr != nil {
			t.Fatalf("round %d: refund: %v", round, refundErr)
		}
		e, found := f.entry(t, req.OrderID)
		if !found {
			t.Fatalf("round %d: no charge entry", round)
		}
		refunds, err := refundCount(f, req.OrderID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Outcome == payments.OutcomeCaptured:
			captured++
			var id uuid.UUID
			for i := range got {
				if withRefund && fault.Is(errs[i], fault.PaymentRequired, fault.CodePaymentDeclined) &&
					strings.Contains(fmt.Sprint(errs[i]), "refunded") {
					continue // it reached the processor after the refund
				}
				if id == uuid.Nil {
					id = got[i].ID
				}
				if errs[i] != nil || got[i].ProviderRef != e.Reference || got[i].ID != id {
					t.Errorf("round %d twin %d: %+v %v, want the capture %s (or, after the refund, 402 saying refunded)",
						round, i, got[i], errs[i], e.Reference)
				}
			}
			if withRefund && (refund.Status != payments.StatusRefunded || refunds != 1) {
				t.Errorf("round %d: the capture was not refunded once: %+v, %d refunds", round, refund, refunds)
			}
			if !withRefund && refunds != 0 {
				t.Errorf("round %d: %d refunds", round, refunds)
			}
		case e.DeclineCode == payments.VoidedCode && withRefund:
			voided++
			for i := range got {
				if !fault.Is(errs[i], fault.PaymentRequired, "payment_declined") {
					t.Errorf("round %d twin %d: %v, want declined (voided)", round, i, errs[i])
				}
			}
			if refund.Status != payments.StatusNone || refunds != 0 {
				t.Errorf("round %d: refund %+v, %d refunds; want none", round, refund, refunds)
			}
		default:
			t.Errorf("round %d: simulator entry %+v", round, e)
		}
		p, err := f.store.ByOrder(ctx, req.OrderID)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if withRefund && p.Status == payments.StatusCaptured {
			t.Errorf("round %d: payment left captured after the refund", round)
		}
	}
	t.Logf("%d rounds captured (refunded when raced), %d voided by the refund", captured, voided)
}

// refundCount reports how many refunds the simulator made for the order.
func refundCount(f *fixture, orderID uuid.UUID) (int, error) {
	var n int
	err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM processor_sim_entries WHERE idempotency_key = $1`,
		payments.RefundKey(orderID)).Scan(&n)
	return n, err
}

// A capture whose recording was lost and that carries no customer (a ledger
// entry older than migration 0002's customer column, or a processor that
// keeps none) is refused by Refund as invalid_refund, naming the way out,
// and nothing is stored or refunded: its row would belong to no user (user_id
// zero), and its owner would be answered 404. The database refuses such a row
// too (migration 0006). Until 2026-12-08 the row was recorded with user_id
// zero and refunded.
func TestAnUnrecordedCaptureWithoutItsOwnerIsNotRecordedForNobody(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	order := uuid.Must(uuid.NewV7())
	if _, err := f.pool.Exec(ctx, `INSERT INTO processor_sim_entries
		(idempotency_key, kind, outcome, reference, amount, currency) VALUES ($1, 'charge', 'captured', 'ch_sim_old', 1299, 'USD')`,
		payments.ChargeKey(order)); err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.Refund(ctx, order)
	if !fault.Is(err, fault.Invalid, fault.CodeInvalidRefund) || !strings.Contains(err.Error(), "docs/checkout.md") {
		t.Fatalf("refund of a capture without its owner: %+v %v, want invalid_refund naming docs/checkout.md", p, err)
	}
	if got, err := f.store.ByOrder(ctx, order); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("stored: %+v %v, want no payment row", got, err)
	}
	if n := f.count(t, "refund"); n != 0 {
		t.Errorf("%d refunds, want none", n)
	}
	if _, err := f.pool.Exec(ctx, `INSERT INTO payments (id, order_id, user_id, status, amount, currency)
		VALUES ($1, $2, '00000000-0000-0000-0000-000000000000', 'captured', 1299, 'USD')`, uuid.New(), order); !violates(err, "payments_user_id_known") {
		t.Errorf("a payment with user_id zero: %v, want the check payments_user_id_known violated", err)
	}
}

// violates reports whether err is PostgreSQL's check violation (23514) of
// the named constraint.
func violates(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && pgErr.ConstraintName == constraint
}
