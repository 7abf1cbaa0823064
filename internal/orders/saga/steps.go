package saga

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/telemetry"
)

// undo is the compensation a failed order owes: what must be given back.
type undo int

const (
	// releaseStock gives the order's stock back; no money was taken.
	releaseStock undo = iota + 1
	// releaseAndRefund also refunds the payment, which may have been taken.
	releaseAndRefund
)

// step is one remote call of the checkout and what its refusals mean.
type step struct {
	// name is the step's timeline entry (orders.Step*).
	name string
	// call makes the remote call; it is idempotent by order id.
	call func(ctx context.Context) error
	// refusals say what a refusal (an error fault.Retryable rejects) means,
	// the first that matches deciding; the last one matches every refusal.
	refusals []refusal
}

// refusal is one way a step can be refused and what the order does about it.
type refusal struct {
	// match tells the refusal; nil matches every refusal.
	match func(error) bool
	// proceed goes on with the next step: the refusal is not final.
	proceed bool
	// fail is how the order ends otherwise; an empty Detail is the refusing
	// service's own message. undo is the compensation the order then owes.
	fail orders.Failure
	undo undo
}

// refusedAs matches a refusal of kind with code (any code when empty).
func refusedAs(kind fault.Kind, code fault.Code) func(error) bool {
	return func(err error) bool { return fault.Is(err, kind, code) }
}

// checkout is the saga of one order: reserve-stock → charge-payment →
// commit-stock, then confirm. Every call is idempotent by order id, so a saga
// re-driven after a crash runs them all again from the first.
func (s *Saga) checkout(sg ordersdb.Saga) []step {
	o := sg.Order
	return []step{{
		name: orders.StepReserve,
		call: func(ctx context.Context) error { return s.cfg.Stock.Reserve(ctx, o.ID, o.Items) },
		refusals: []refusal{
			// An earlier run's hold expired: commit-stock takes the stock again if it can.
			{match: refusedAs(fault.Conflict, fault.CodeReservationReleased), proceed: true},
			{match: refusedAs(fault.Conflict, fault.CodeOutOfStock), undo: releaseStock,
				fail: orders.Failure{Status: orders.Cancelled, Reason: orders.ReasonOutOfStock}},
			{undo: releaseStock, fail: orders.Failure{Status: orders.Cancelled, Reason: orders.ReasonRejected,
				Detail: "reserve-stock refused the order"}},
		},
	}, {
		name: orders.StepCharge,
		call: func(ctx context.Context) error {
			return s.cfg.Payments.Charge(ctx, Charge{OrderID: o.ID, UserID: o.UserID, Amount: o.Total, Token: sg.PaymentToken})
		},
		refusals: []refusal{
			{match: refusedAs(fault.PaymentRequired, ""), undo: releaseStock, fail: orders.Failure{Status: orders.PaymentFailed,
				Reason: orders.ReasonPaymentDeclined, Detail: "the payment was declined"}},
			{match: refusedAs(fault.Invalid, ""), undo: releaseStock, fail: orders.Failure{Status: orders.PaymentFailed,
				Reason: orders.ReasonInvalidToken, Detail: "the payment token was refused"}},
			{undo: releaseAndRefund, fail: orders.Failure{Status: orders.PaymentFailed, Reason: orders.ReasonRejected,
				Detail: "charge-payment refused the order"}},
		},
	}, {
		name: orders.StepCommit,
		call: func(ctx context.Context) error { return s.cfg.Stock.Commit(ctx, o.ID) },
		refusals: []refusal{
			{match: func(err error) bool {
				return fault.Is(err, fault.Conflict, fault.CodeOutOfStock) || fault.KindOf(err) == fault.NotFound
			}, undo: releaseAndRefund, fail: orders.Failure{Status: orders.Cancelled, Reason: orders.ReasonOutOfStock,
				Detail: "the stock reservation expired and the stock is gone"}},
			{undo: releaseAndRefund, fail: orders.Failure{Status: orders.Cancelled, Reason: orders.ReasonRejected,
				Detail: "commit-stock refused the order"}},
		},
	}}
}

// drive runs an order's saga from its persisted state: it settles an owed
// compensation, then, for a pending order, makes each step in turn and ends
// the order as the first final refusal says, or confirms it. A step that
// stays unavailable leaves the order pending for a later run. Only the
// orders database failing to load the saga is an error.
func (s *Saga) drive(ctx context.Context, orderID uuid.UUID) (orders.Checkout, error) {
	sg, err := s.db.LoadSaga(ctx, orderID)
	if err != nil {
		return orders.Checkout{}, err
	}
	o := sg.Order
	if sg.Compensation == orders.CompensationOwed {
		s.compensate(ctx, o, releaseAndRefund)
	}
	if o.Status != orders.Pending {
		return orders.Checkout{Order: o}, nil
	}
	if sg.PaymentToken == "" { // cannot happen: the token is cleared only when the order leaves pending
		return s.fail(ctx, o, refusal{undo: releaseAndRefund, fail: orders.Failure{Status: orders.Cancelled,
			Reason: orders.ReasonRejected, Detail: "the saga lost its payment token"}}, nil), nil
	}
	for _, st := range s.checkout(sg) {
		err := s.attempt(ctx, o.ID, st.name, st.call)
		if err == nil {
			continue
		}
		if fault.Retryable(err) {
			return orders.Checkout{Order: o}, nil // still pending: a later run finishes it
		}
		r := st.refused(err)
		if r.proceed {
			continue
		}
		return s.fail(ctx, o, r, err), nil
	}
	return s.confirm(ctx, sg), nil
}

// refused is the first refusal of st that matches err.
func (st step) refused(err error) refusal {
	for _, r := range st.refusals {
		if r.match == nil || r.match(err) {
			return r
		}
	}
	return st.refusals[len(st.refusals)-1]
}

// confirm confirms the order, then empties the cart it was ordered from.
// When the orders database fails, the order stays pending: recovery confirms
// it (every step before is idempotent).
func (s *Saga) confirm(ctx context.Context, sg ordersdb.Saga) orders.Checkout {
	c, err := s.decide(ctx, sg.Order.ID, func(o *orders.Order) (orders.Change, error) { return o.Confirm(time.Now()) })
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "confirm order", "order_id", sg.Order.ID, "err", err.Error())
		return orders.Checkout{Order: sg.Order}
	}
	if sg.FromCart && s.cfg.Cart != nil && c.Order.Status == orders.Confirmed {
		outcome, detail := orders.StepOK, "the ordered cart was emptied"
		if err := s.cfg.Cart.Clear(ctx, c.Order.UserID); err != nil {
			outcome, detail = orders.StepError, "the cart could not be emptied"
			s.cfg.Log.WarnContext(ctx, "clear cart", "order_id", c.Order.ID, "err", err.Error())
		}
		s.note(ctx, c.Order.ID, orders.StepCart, outcome, detail)
	}
	return c
}

// fail ends a pending order as r says, then compensates. The owed
// compensation is persisted with the status change, so a crash before it is
// settled leaves it to recover-orders. cause is the refusal (nil when none),
// whose message is the detail when r has none. When the orders database
// fails, the order stays pending: recovery re-drives it.
func (s *Saga) fail(ctx context.Context, o orders.Order, r refusal, cause error) orders.Checkout {
	f := r.fail
	if f.Detail == "" {
		f.Detail = safeMessage(cause)
	}
	c, err := s.decide(ctx, o.ID, func(o *orders.Order) (orders.Change, error) { return o.Fail(f, time.Now()) })
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "fail order", "order_id", o.ID, "err", err.Error())
		return orders.Checkout{Order: o, Detail: f.Detail}
	}
	s.compensate(ctx, c.Order, r.undo)
	return c
}

// decide writes one decision about an order (ordersdb.Store.Update) and
// returns the checkout it comes to: the order after it and the detail of the
// change (empty when the decision changed nothing).
func (s *Saga) decide(ctx context.Context, orderID uuid.UUID, decision func(*orders.Order) (orders.Change, error)) (orders.Checkout, error) {
	var change orders.Change
	o, err := s.db.Update(ctx, orderID, func(o *orders.Order) (orders.Change, error) {
		var err error
		change, err = decision(o)
		return change, err
	})
	return orders.Checkout{Order: o, Detail: change.Detail}, err
}

// compensate gives back what u says — the order's stock, and its payment for
// releaseAndRefund — then marks the compensation settled. Both calls are
// idempotent, so compensating twice restocks and refunds once. A call that
// fails leaves the compensation owed: recover-orders settles it.
func (s *Saga) compensate(ctx context.Context, o orders.Order, u undo) {
	err := s.attempt(ctx, o.ID, orders.StepRelease, func(ctx context.Context) error { return s.cfg.Stock.Release(ctx, o.ID) })
	if err == nil && u == releaseAndRefund {
		err = s.attempt(ctx, o.ID, orders.StepRefund, func(ctx context.Context) error { return s.cfg.Payments.Refund(ctx, o.ID) })
	}
	if err != nil {
		telemetry.ShopFrom(ctx).Compensation(false)
		return
	}
	if err := s.db.SettleCompensation(ctx, o.ID); err != nil {
		s.cfg.Log.ErrorContext(ctx, "settle compensation", "order_id", o.ID, "err", err.Error())
		return
	}
	telemetry.ShopFrom(ctx).Compensation(true)
}

// attempt makes one remote call, trying it again while it fails retryably
// (fault.Retryable) up to Attempts times with a doubling backoff, and records
// each try's outcome in the timeline. It returns the last error.
func (s *Saga) attempt(ctx context.Context, orderID uuid.UUID, name string, call func(context.Context) error) error {
	var err error
	for try := 1; try <= s.cfg.Attempts; try++ {
		if try > 1 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(s.cfg.Backoff << (try - 2)):
			}
		}
		began := time.Now()
		err = call(ctx)
		outcome := orders.StepOK
		switch {
		case err == nil:
		case !fault.Retryable(err):
			outcome = orders.StepRefused
		default:
			outcome = orders.StepError
		}
		telemetry.ShopFrom(ctx).Step(name, outcome, time.Since(began).Seconds(), name == orders.StepCharge, name == orders.StepReserve)
		switch outcome {
		case orders.StepOK:
			s.note(ctx, orderID, name, orders.StepOK, "")
			return nil
		case orders.StepRefused:
			s.note(ctx, orderID, name, orders.StepRefused, safeMessage(err))
			return err
		}
		s.cfg.Log.WarnContext(ctx, "saga step failed", "order_id", orderID, "step", name, "attempt", try, "err", err.Error())
		s.note(ctx, orderID, name, orders.StepError, fmt.Sprintf("attempt %d: %s", try, safeMessage(err)))
	}
	return err
}

func (s *Saga) note(ctx context.Context, orderID uuid.UUID, step, outcome, detail string) {
	if err := s.db.Record(ctx, orderID, step, outcome, detail); err != nil {
		s.cfg.Log.ErrorContext(ctx, "record timeline", "order_id", orderID, "step", step, "err", err.Error())
	}
}

// safeMessage is the client-safe message of err (never the cause).
func safeMessage(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Kind != fault.Internal {
		return fe.Message
	}
	return "internal error"
}
