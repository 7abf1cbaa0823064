package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/postgres"
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
	// retakeOnly marks a step made only when reserve-stock answered
	// reservation_released in this run (whether drive or Place made that
	// try); otherwise it is skipped and leaves no timeline entry.
	retakeOnly bool
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

// checkout is the saga of one order: reserve-stock → charge-payment, then
// confirm. The hold of a confirmed order is turned into a sale later, in
// batches, by the sweep (expire-reservations asks order-statuses and sells the
// holds of confirmed orders): it moves units from reserved to sold and leaves
// available as it was, so the checkout need not wait for it. commit-stock runs
// only when reserve-stock answered that an earlier run's hold was given back
// (reservation_released): the stock must then be taken again before the order
// is confirmed, or the order fails and is refunded. Every call is idempotent
// by order id, so a saga re-driven after a crash runs them all again from the
// first.
func (s *Saga) checkout(sg ordersdb.Saga) []step {
	o := sg.Order
	return []step{{
		name: orders.StepReserve,
		call: func(ctx context.Context) error { return s.cfg.Stock.Reserve(ctx, o.ID, o.Items) },
		refusals: []refusal{
			// An earlier run's hold was given back: commit-stock takes the stock again if it can
			// (an expired hold; a released one is final: 409 reservation_released fails the order, refunded).
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
			// A refused token is no proof that nothing was charged: the
			// refusal may answer a retry of a try whose call timed out and
			// is still in flight (a processor with single-use tokens refuses
			// the token's second use), and that first try may capture later.
			// The refund voids the order's charge key (refund-payment: an
			// order with no payment answers none), so nothing can land.
			{match: refusedAs(fault.Invalid, ""), undo: releaseAndRefund, fail: orders.Failure{Status: orders.PaymentFailed,
				Reason: orders.ReasonInvalidToken, Detail: "the payment token was refused"}},
			{undo: releaseAndRefund, fail: orders.Failure{Status: orders.PaymentFailed, Reason: orders.ReasonRejected,
				Detail: "charge-payment refused the order"}},
		},
	}, {
		name:       orders.StepCommit,
		retakeOnly: true,
		call:       func(ctx context.Context) error { return s.cfg.Stock.Commit(ctx, o.ID) },
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
//
// loaded, when not nil, is the saga as the caller just wrote it (Place), so
// it is not read back; first, when not nil, is the first try of a step, made
// already (Place makes reserve-stock's beside the write of the order), which
// drive takes as that step's first try. The steps' timeline entries ride in
// the order's next transaction (see timeline).
func (s *Saga) drive(ctx context.Context, orderID uuid.UUID, loaded *ordersdb.Saga, first *tried) (orders.Checkout, error) {
	var sg ordersdb.Saga
	if loaded != nil {
		sg = *loaded
	} else {
		var err error
		if sg, err = s.db.LoadSaga(ctx, orderID); err != nil {
			return orders.Checkout{}, err
		}
	}
	tl := &timeline{run: sg.Attempts}
	defer s.flush(ctx, orderID, tl)
	o := sg.Order
	if claimLost(ctx) {
		return orders.Checkout{Order: o}, nil // lost while the saga was read: the run that took the order over drives it
	}
	if sg.Compensation == orders.CompensationOwed {
		s.compensate(ctx, tl, o, releaseAndRefund)
	}
	if o.Status != orders.Pending {
		if sg.CartOwed && o.Status == orders.Confirmed {
			s.settleOwedCart(ctx, tl, o, sg.InStatus)
		}
		return orders.Checkout{Order: o}, nil
	}
	if claimLost(ctx) {
		// Lost during the compensation: no decision (the give-up below is
		// one), the run that took the order over makes it.
		return orders.Checkout{Order: o}, nil
	}
	if sg.Age > s.cfg.GiveUpAfter {
		// Still pending after a long outage: no more charge tries (the
		// processor may have forgotten the key of the first), but the end
		// a refused charge gets: released, and the charge key voided, which
		// refunds a charge the processor made. payment_failed, so the
		// customer, answered 202 pending long ago, is told
		// (order.payment_failed.v1).
		return s.fail(ctx, tl, o, refusal{undo: releaseAndRefund, fail: orders.Failure{Status: orders.PaymentFailed,
			Reason: orders.ReasonExpired, Detail: "the payment could not be completed within " + hours(s.cfg.GiveUpAfter) +
				"; whatever was charged is refunded"}}, nil), nil
	}
	if sg.PaymentToken == "" { // cannot happen: the token is cleared only when the order leaves pending
		return s.fail(ctx, tl, o, refusal{undo: releaseAndRefund, fail: orders.Failure{Status: orders.Cancelled,
			Reason: orders.ReasonRejected, Detail: "the saga lost its payment token"}}, nil), nil
	}
	retake := false // reserve-stock answered reservation_released in this run
	for _, st := range s.checkout(sg) {
		if st.retakeOnly && !retake {
			continue
		}
		if claimLost(ctx) {
			return orders.Checkout{Order: o}, nil // another recovery run took the order over
		}
		err := s.attemptAfter(ctx, tl, o.ID, st.name, st.call, first.of(st.name))
		if claimLost(ctx) {
			// Cut by the claim's loss: whatever the step answered, its
			// effect is unknown (a charge cut in flight may still capture),
			// so no refusal is read from it and no decision made; the run
			// that took the order over makes the step again (idempotent)
			// and settles the order.
			return orders.Checkout{Order: o}, nil
		}
		if st.name == orders.StepReserve {
			retake = fault.Is(err, fault.Conflict, fault.CodeReservationReleased)
		}
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
		return s.fail(ctx, tl, o, r, err), nil
	}
	if claimLost(ctx) {
		return orders.Checkout{Order: o}, nil
	}
	return s.confirm(ctx, tl, sg), nil
}

// hours writes d for a customer: "12 hours", or Go's form when it is not whole hours.
func hours(d time.Duration) string {
	if d%time.Hour != 0 {
		return d.String()
	}
	if d == time.Hour {
		return "1 hour"
	}
	return fmt.Sprintf("%d hours", d/time.Hour)
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

// clearTimeout bounds taking a confirmed order's lines out of its cart,
// which outlives the saga's deadline.
const clearTimeout = 2 * time.Second

// confirm confirms the order, then takes its lines out of the cart it was
// ordered from.
// When the orders database fails, the order stays pending: recovery confirms
// it (every step before is idempotent). A failure may also be the lost answer
// of a confirmation that committed (the connection broke after COMMIT), or
// a confirmation still running (cut at the saga's deadline: see decide), so
// the order is read again first, once the write can no longer commit
// (lookUp settles it): confirmed, the run goes on as if the
// confirmation had answered — the ordered lines leave the cart and the order
// is answered confirmed. The confirmation of a cart order leaves the removal
// owed in its own transaction (orders.Change.CartOwed), so if this run dies
// before the removal, recovery makes it.
func (s *Saga) confirm(ctx context.Context, tl *timeline, sg ordersdb.Saga) orders.Checkout {
	fromCart := sg.FromCart && s.cfg.Cart != nil
	c, err := s.decide(ctx, tl, sg.Order, func(o *orders.Order) (orders.Change, error) {
		ch, err := o.Confirm(time.Now())
		// The removal is owed from the confirmation's commit on, so that
		// recovery makes it if this run dies before it does.
		ch.CartOwed = fromCart && !ch.None()
		return ch, err
	})
	status := c.Order.Status // as stored: the answer may be the checkout its key was settled with
	if err != nil {
		// An order found confirmed — or cancelled by request, which only a
		// confirmed order can be (orders.Order.Cancel; Fail refuses that
		// reason), by its owner or an admin in the instant since — was
		// confirmed by this run (it holds the lease; were the lease run out,
		// a recovery's confirmation would leave it just as confirmed), and
		// the timeline entries with it. An order cancelled for another reason
		// (out of stock, rejected) was failed from pending by a recovery
		// that took it once this run's lease ran out: not confirmed.
		stored, lerr := s.lookUp(ctx, sg.Order.ID, err)
		if lerr != nil || !confirmedBefore(stored.Order) {
			s.logWrite(ctx, slog.LevelError, "confirm order", "order_id", sg.Order.ID, "err", err.Error())
			return orders.Checkout{Order: sg.Order}
		}
		s.logWrite(ctx, slog.LevelWarn, "the answer of the order's confirmation was lost; it was confirmed", "order_id", sg.Order.ID, "err", err.Error())
		// The run's entries stay held: those that went out with the write
		// (decide: doubted) are in the timeline if it was this run's write
		// that committed, not if another driver's did (its own entries are
		// no substitute), and flush writes each that is not, once. Until
		// 2026-12-08 they were dropped, and lost when the order was
		// another driver's confirmation.
		tl.changed = true
		c, status = orders.Checkout{Order: stored.Order, Detail: c.Detail}, stored.Order.Status
		if status != orders.Confirmed {
			// Cancelled since. Whichever driver confirmed it (this run, or a
			// recovery once this run's lease ran out), its confirmation
			// settled the order's Idempotency-Key in its transaction: the
			// answer is what that key replays, so that the same request
			// asked again gets the same answer. Without a key, the order
			// as stored (409 not_cancellable). The key unreadable, pending
			// (202): a retry with the key gets its replay.
			// Read past the saga's deadline, as the look-up was.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), doubtTimeout)
			settled, serr := s.db.SettledCheckout(rctx, sg.Order.ID)
			cancel()
			switch {
			case serr != nil:
				s.cfg.Log.ErrorContext(ctx, "read the order's settled checkout", "order_id", sg.Order.ID, "err", serr.Error())
				return orders.Checkout{Order: sg.Order}
			case settled != nil:
				c = *settled
			}
		}
	}
	if fromCart && status == orders.Confirmed {
		// The order is confirmed: take its lines out of the cart now, even
		// when the saga's deadline passes, rather than leave them to
		// recovery (which waits for the lease to run out).
		s.takeOutOfCart(ctx, tl, c.Order)
	}
	return c
}

// confirmedBefore reports whether o is confirmed or was: confirmed, or
// cancelled by request (orders.Order.Cancel takes only a confirmed order).
func confirmedBefore(o orders.Order) bool {
	return o.Status == orders.Confirmed || (o.Status == orders.Cancelled && o.Reason == orders.ReasonCancelled)
}

// settleOwedCart settles the cart removal a confirmed order's confirmation
// left owed because its run died (or Redis refused) before it: the lines are
// taken out, or left where they are once the order has been confirmed for
// longer than GiveUpAfter (confirmed is how long: a late removal takes out
// what the customer set again since, the longer the likelier; counted from
// the confirmation, so an order recovery confirmed late still gets its
// removal tries) or when this saga has no cart store (never through
// ordersenv; settled, or recovery would claim the order for ever).
func (s *Saga) settleOwedCart(ctx context.Context, tl *timeline, o orders.Order, confirmed time.Duration) {
	if claimLost(ctx) {
		// The run that took the order over settles the removal; settled
		// here too, the timeline would say so twice.
		return
	}
	leave := func(detail string) {
		tl.noteCart(orders.StepError, detail)
	}
	switch {
	case confirmed > s.cfg.GiveUpAfter:
		leave("the ordered lines were not taken out of the cart within " + hours(s.cfg.GiveUpAfter) + " of the confirmation; they stay")
	case s.cfg.Cart == nil:
		s.cfg.Log.ErrorContext(ctx, "a cart removal is owed, but this saga has no cart store", "order_id", o.ID)
		leave("no cart store: the ordered lines stay in the cart")
	default:
		s.takeOutOfCart(ctx, tl, o)
	}
}

// takeOutOfCart takes a confirmed cart order's lines out of the cart it was
// ordered from, on a context of its own (clearTimeout): only what it ordered,
// so a line the customer added since the cart was priced, or now at another
// quantity, stays. Done, the run's flush settles the removal the
// confirmation left owed (ordersdb.Store.RecordCartSettled); failed, it stays
// owed, and recovery tries again once the lease has run out. The saga has a
// cart store (its callers check).
func (s *Saga) takeOutOfCart(ctx context.Context, tl *timeline, o orders.Order) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clearTimeout)
	defer cancel()
	ordered := make([]cart.Line, len(o.Items))
	for i, l := range o.Items {
		ordered[i] = cart.Line{ProductID: l.ProductID, Quantity: l.Quantity}
	}
	// Tries come until GiveUpAfter past the confirmation (settleOwedCart):
	// the removal's mark outlives them, so a removal made again takes
	// nothing the customer set back since.
	if err := s.cfg.Cart.RemoveOrdered(cctx, o.UserID, o.ID, ordered, s.cfg.GiveUpAfter+time.Hour); err != nil {
		s.cfg.Log.WarnContext(ctx, "take the ordered lines out of the cart", "order_id", o.ID, "err", err.Error())
		tl.note(orders.StepCart, orders.StepError, "the ordered lines could not be taken out of the cart")
		return
	}
	if claimLost(ctx) {
		// The run that took the order over removes the lines again (the
		// removal's mark makes that take nothing more) and settles and
		// notes the removal, once: left owed here, not noted.
		s.cfg.Log.InfoContext(ctx, "claim lost, left to the run that took the order over", "order_id", o.ID, "step", orders.StepCart)
		return
	}
	tl.noteCart(orders.StepOK, "the ordered lines were taken out of the cart")
}

// fail ends a pending order as r says, then compensates. The owed
// compensation is persisted with the status change, so a crash before it is
// settled leaves it to recover-orders. cause is the refusal (nil when none),
// whose message is the detail when r has none. When the orders database
// fails, the order stays pending: recovery re-drives it. As for confirm, a
// failure may be the lost answer of a write that committed, so the order is
// read again first, once the write can no longer commit (lookUp): ended as
// r says, the run goes on as if the write had answered — it answers the
// refusal and compensates now (before the saga's deadline; a compensation
// that fails, as past it, is left owed to recovery as always). An order
// this run did not end (found in r's status already, or, after a lost
// answer, found with another reason) is compensated with release and refund
// whatever r's undo, so its compensation is never marked done with a refund
// it owes unmade. An order found ended in another status (a recovery failed
// or confirmed it once this run's lease ran out; cancel-order cancelled it
// after a confirmation) is answered as it ended (endedOtherwise), with
// nothing written or given back by this run: its end's driver owes that.
func (s *Saga) fail(ctx context.Context, tl *timeline, o orders.Order, r refusal, cause error) orders.Checkout {
	f := r.fail
	if f.Detail == "" {
		f.Detail = safeMessage(cause)
	}
	// ended: the order as stored was pending, and this run's write ended
	// it as r says (decide may decide twice: the last decision is the
	// stored order's).
	ended := false
	// lost: the failure's write lost its answer and the order was found
	// cancelled as r cancels it (whose write that was is unknown).
	lost := false
	// other: the order as stored, when the decision refused it (ended
	// already in another status than r's, by another driver).
	var other *orders.Order
	c, err := s.decide(ctx, tl, o, func(o *orders.Order) (orders.Change, error) {
		ch, err := o.Fail(f, time.Now())
		ended = err == nil && !ch.None()
		other = nil
		if err != nil && o.Status != orders.Pending {
			stored := *o
			other = &stored
		}
		return ch, err
	})
	if err != nil && other != nil {
		// Ended otherwise meanwhile (a recovery that took the order once
		// this run's lease ran out, or cancel-order after another driver
		// confirmed it): nothing was written, and the order's end is the
		// answer (endedOtherwise), so that its owner sees how it ended.
		// What that end owes is its driver's to give back (or recovery's).
		s.logWrite(ctx, slog.LevelWarn, "the order ended otherwise before its failure", "order_id", o.ID, "status", other.Status, "reason", other.Reason, "refusal", f.Status)
		return s.endedOtherwise(ctx, o, *other)
	}
	if err != nil {
		stored, lerr := s.lookUp(ctx, o.ID, err)
		if lerr == nil && stored.Order.Status != orders.Pending && stored.Order.Status != f.Status {
			// The write did not commit: another driver ended the order
			// first. Answered as it ended, as above.
			s.logWrite(ctx, slog.LevelWarn, "the order ended otherwise before its failure", "order_id", o.ID, "status", stored.Order.Status, "reason", stored.Order.Reason, "refusal", f.Status, "err", err.Error())
			return s.endedOtherwise(ctx, o, stored.Order)
		}
		if lerr != nil || stored.Order.Status != f.Status {
			s.logWrite(ctx, slog.LevelError, "fail order", "order_id", o.ID, "err", err.Error())
			return orders.Checkout{Order: o, Detail: f.Detail}
		}
		// Found in r's status: this run's write committed, with the
		// timeline entries, unless another driver ended the order so (a
		// recovery once this run's lease ran out, or cancel-order after a
		// confirmation), which the reason tells apart below.
		s.logWrite(ctx, slog.LevelWarn, "the answer of the order's failure was lost; it was written", "order_id", o.ID, "err", err.Error())
		tl.changed = true // its entries stay held, as confirm's do
		c = orders.Checkout{Order: stored.Order, Detail: f.Detail}
		// Ended with r's reason, as this run's write ends it; any other
		// (cancelled by its owner after another driver confirmed it) is
		// not this run's end.
		ended = stored.Order.Reason == f.Reason
		// Even with r's reason a cancellation may be another driver's: a
		// reserve-stock refusal and a commit-stock one cancel an order with
		// the same reason, the first owing a release, the second a refund
		// too. Which write committed is unknown, so all of it is given back
		// (a refund of an order never charged refunds nothing). A failed
		// payment's reason is its refusal's alone.
		lost = stored.Order.Status == orders.Cancelled
	}
	u := r.undo
	if !ended || lost {
		// Found ended in r's status, not by this run's write (another
		// driver's: cancel-order cancels an order a driver confirmed
		// meanwhile), or perhaps not: what it owes may be more than r's
		// undo (the refund of a cancellation, after a release-only
		// refusal), and the compensation must not be marked done before
		// all of it is given back. So all of it is, as drive settles any
		// owed compensation (both calls are idempotent).
		u = releaseAndRefund
	}
	s.compensate(ctx, tl, c.Order, u)
	if !ended {
		// Not this run's end: answered as an end in another status is
		// (endedOtherwise), what the order's key replays if it has one.
		return s.endedOtherwise(ctx, o, c.Order)
	}
	return c
}

// endedOtherwise is the answer of a refusal of known, an order another
// driver ended (stored) in another status than the refusal's. That driver's
// transaction settled the order's Idempotency-Key, if it has one: the answer
// is what the key replays, as for confirm, so that the same request asked
// again gets the same answer; without a key, the order as it ended. The key
// unreadable, known (pending, 202): a retry with the key gets its replay.
func (s *Saga) endedOtherwise(ctx context.Context, known, stored orders.Order) orders.Checkout {
	// Read past the saga's deadline, as lookUp reads.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), doubtTimeout)
	settled, err := s.db.SettledCheckout(rctx, known.ID)
	cancel()
	switch {
	case err != nil:
		s.cfg.Log.ErrorContext(ctx, "read the order's settled checkout", "order_id", known.ID, "err", err.Error())
		return orders.Checkout{Order: known}
	case settled != nil:
		return *settled
	}
	return orders.Checkout{Order: stored}
}

// decide writes one decision about an order (ordersdb.Store.UpdateKnown),
// with the timeline entries tl holds, and returns the checkout it comes to:
// the order after it and the detail of the change (empty when the decision
// changed nothing). known is the order as the saga last saw it stored (written
// or loaded): when it still is, the decision costs one round trip, otherwise
// it is made again on the order as stored. The write ends by the saga's
// deadline (postgres.FinishBy). When it fails, tl keeps its entries: as
// doubted when the write's answer was lost (ordersdb.NotWritten is false: it
// may have committed them), for flush to write those it did not; otherwise
// nothing was written, and they stay notes.
func (s *Saga) decide(ctx context.Context, tl *timeline, known orders.Order, decision func(*orders.Order) (orders.Change, error)) (orders.Checkout, error) {
	if d, ok := ctx.Deadline(); ok {
		// The write's COMMIT would otherwise run up to its own timeout past
		// the saga's deadline (postgres.Detached), outside LongestDrive: cut
		// there, it is in doubt, and the look-up after it (confirm, fail)
		// settles it.
		ctx = postgres.FinishBy(ctx, d)
	}
	var change orders.Change
	o, err := s.db.UpdateKnown(ctx, known, func(o *orders.Order) (orders.Change, error) {
		var err error
		change, err = decision(o)
		return change, err
	}, tl.notes...)
	switch {
	case err == nil:
		tl.notes, tl.changed = nil, true
	case !ordersdb.NotWritten(err):
		tl.doubted, tl.notes = append(tl.doubted, tl.notes...), nil
	}
	return orders.Checkout{Order: o, Detail: change.Detail}, err
}

// compensate gives back what u says — the order's stock, and its payment for
// releaseAndRefund — then marks the compensation settled. Both calls are
// idempotent, so compensating twice restocks and refunds once. A call that
// fails leaves the compensation owed: recover-orders settles it. The refund
// is made even when the release failed: a refund that waited for an
// inventory outage to end could come after the card processor forgot the
// charge's key, and find nothing to void.
func (s *Saga) compensate(ctx context.Context, tl *timeline, o orders.Order, u undo) {
	err := s.attempt(ctx, tl, o.ID, orders.StepRelease, func(ctx context.Context) error { return s.cfg.Stock.Release(ctx, o.ID) })
	if u == releaseAndRefund {
		if rerr := s.attempt(ctx, tl, o.ID, orders.StepRefund, func(ctx context.Context) error { return s.cfg.Payments.Refund(ctx, o.ID) }); err == nil {
			err = rerr
		}
	}
	if claimLost(ctx) {
		// Left owed to the run that took the order over: it gives all of
		// it back again (idempotent) and settles it. Not counted owed: no
		// call was refused, the run was cut.
		return
	}
	if err != nil {
		telemetry.ShopFrom(ctx).Compensation(false)
		return
	}
	if err := s.db.SettleCompensation(ctx, o.ID); err != nil {
		s.logWrite(ctx, slog.LevelError, "settle compensation", "order_id", o.ID, "err", err.Error())
		return
	}
	tl.changed = true
	telemetry.ShopFrom(ctx).Compensation(true)
}

// logWrite logs msg, what a failed write of the order came to, at level;
// once a recovery run's claim is lost (claimLost), at INFO as that loss
// instead: the write failed on the cut drive's context, or found the order
// as the run that took it over left it. That is no fault of the orders
// database, and that run settles the order (until 2026-12-08 such a cut
// confirmation was an ERROR "confirm order").
func (s *Saga) logWrite(ctx context.Context, level slog.Level, msg string, args ...any) {
	if claimLost(ctx) {
		s.cfg.Log.InfoContext(ctx, "claim lost, left to the run that took the order over", append([]any{"write", msg}, args...)...)
		return
	}
	s.cfg.Log.Log(ctx, level, msg, args...)
}

// attempt makes one remote call, trying it again while it fails retryably
// (fault.Retryable) up to Attempts times with a doubling backoff, and notes
// each try's outcome in tl. It returns the last error.
func (s *Saga) attempt(ctx context.Context, tl *timeline, orderID uuid.UUID, name string, call func(context.Context) error) error {
	return s.attemptAfter(ctx, tl, orderID, name, call, nil)
}

// attemptAfter is attempt whose first try, when first is not nil, was made
// already: it is noted and counted as if made here, and the backoff before the
// second runs from its end.
//
// A recovery run whose claim is lost (claimLost) makes no more tries, and the
// try the loss cut is neither noted, counted nor logged as a failure: its
// answer is the cut's, not the other service's, and the run that took the
// order over makes the step again and notes what it answers.
func (s *Saga) attemptAfter(ctx context.Context, tl *timeline, orderID uuid.UUID, name string, call func(context.Context) error, first *tried) error {
	var t tried
	for n := 1; n <= s.cfg.Attempts; n++ {
		if n == 1 && first != nil {
			t = *first
		} else {
			if n > 1 {
				select {
				case <-ctx.Done():
					return t.err
				case <-time.After(time.Until(t.ended.Add(s.cfg.Backoff << (n - 2)))):
				}
			}
			if claimLost(ctx) {
				return context.Cause(ctx)
			}
			t = try(ctx, name, call)
			if claimLost(ctx) {
				s.cfg.Log.InfoContext(ctx, "claim lost, left to the run that took the order over", "order_id", orderID, "step", name, "attempt", n)
				return t.err
			}
		}
		err := t.err
		outcome := orders.StepOK
		switch {
		case err == nil:
		case !fault.Retryable(err):
			outcome = orders.StepRefused
		default:
			outcome = orders.StepError
		}
		// A refused charge is a payment decline (whatever charge-payment
		// refused); only out_of_stock is a reservation conflict. reserve-
		// stock's reservation_released is a retake the saga continues from
		// (commit-stock takes the stock again): the metrics count it as an
		// answered step, no failure, while the timeline notes the refusal.
		metric := outcome
		if name == orders.StepReserve && fault.Is(err, fault.Conflict, fault.CodeReservationReleased) {
			metric = orders.StepOK
		}
		telemetry.ShopFrom(ctx).Step(name, metric, t.ended.Sub(t.began).Seconds(),
			name == orders.StepCharge, name == orders.StepReserve && fault.Is(err, fault.Conflict, fault.CodeOutOfStock))
		switch outcome {
		case orders.StepOK:
			tl.noteAt(t.ended, name, orders.StepOK, "")
			return nil
		case orders.StepRefused:
			tl.noteAt(t.ended, name, orders.StepRefused, safeMessage(err))
			return err
		}
		s.cfg.Log.WarnContext(ctx, "saga step failed", "order_id", orderID, "step", name, "attempt", n, "err", err.Error())
		tl.noteAt(t.ended, name, orders.StepError, fmt.Sprintf("attempt %d: %s", n, safeMessage(err)))
	}
	return t.err
}

// tried is one try of a step's remote call: its answer, and when it ran.
type tried struct {
	step         string
	err          error
	began, ended time.Time
}

// try makes one try of step's call.
func try(ctx context.Context, step string, call func(context.Context) error) tried {
	t := tried{step: step, began: time.Now()}
	t.err = call(ctx)
	t.ended = time.Now()
	return t
}

// of is t when it is a try of step, nil otherwise.
func (t *tried) of(step string) *tried {
	if t != nil && t.step == step {
		return t
	}
	return nil
}

// timeline holds the timeline entries of one saga run that are not written
// yet. A step's outcome cannot share the transaction of the change it records
// (that change is another service's), so instead of a transaction of its own
// it rides in the order's next one: the decision that confirms or fails the
// order (Update), or, when the run ends without one, a single Record (flush).
// A crash before then loses the entries of steps that the next run makes
// again, idempotently, and notes anew.
//
// A recovery run past the first RecordedRecoveries of its order that changes
// nothing writes none of its entries (see flush).
type timeline struct {
	notes []ordersdb.Note
	// doubted are entries that went out with a decision whose answer was
	// lost (decide): written with it if it committed. flush writes each
	// that the timeline does not hold (ordersdb.Store.RecordUnlessWritten),
	// so that every entry is written once, whichever driver's write ended
	// the order.
	doubted []ordersdb.Note
	// run is which recovery run of the order this is (the saga's claims so
	// far, ordersdb.Saga.Attempts); 0 for a request's run.
	run int
	// changed is set once the run changed the order: a decision written
	// (with the entries held then) or an owed compensation settled.
	changed bool
	// cart holds the entry of the run's settling of a confirmed cart
	// order's owed removal (it took the lines out of the cart, or gave the
	// removal up): flush clears the owed removal and writes it only if its
	// write is the one that does, so that two runs that both settled it (the
	// first's claim lost just after it checked it) write it once
	// (ordersdb.Store.RecordCartSettled).
	cart []ordersdb.Note
}

// RecordedRecoveries is how many recovery runs of one order write their
// timeline entries whatever they come to. recover-orders drives a stuck order
// every minute, and each run noted every try of every step it made: a few
// entries a minute, some 2 million a year for one order whose payment keeps
// failing. The first runs show whether a failure lasts, and its trace; the
// later ones only repeat it (recover-orders logs each failed try with the
// order id and the trace id). So a later run writes its entries only when it
// changes the order — confirms or fails it, or settles an owed compensation
// — and the last recorded run that changes nothing says so in the timeline
// (orders.StepRecovery). An order's timeline thus holds the request's run, at
// most RecordedRecoveries recovery runs and the one that ends the order.
const RecordedRecoveries = 5

// note remembers a step's outcome, now.
func (tl *timeline) note(step, outcome, detail string) { tl.noteAt(time.Now(), step, outcome, detail) }

// noteCart remembers the settling of the owed cart removal, now.
func (tl *timeline) noteCart(outcome, detail string) {
	tl.cart = append(tl.cart, ordersdb.Note{At: time.Now(), Step: orders.StepCart, Outcome: outcome, Detail: detail})
}

// noteAt remembers a step's outcome at a given time.
func (tl *timeline) noteAt(at time.Time, step, outcome, detail string) {
	tl.notes = append(tl.notes, ordersdb.Note{At: at, Step: step, Outcome: outcome, Detail: detail})
}

// flushTimeout bounds the write of a run's last timeline entries, which
// outlives the run's deadline.
const flushTimeout = 3 * time.Second

// flush writes what tl still holds, in one transaction, on a context of its
// own: a run often ends because its deadline passed, and its entries (the
// errors that left the order pending) are what an operator reads then. A
// recovery run past RecordedRecoveries that changed nothing writes nothing;
// the last recorded one adds an entry saying that later ones are not
// recorded. Entries doubted (a decision's lost answer) are written only
// where the timeline lacks them.
func (s *Saga) flush(ctx context.Context, orderID uuid.UUID, tl *timeline) {
	notes, doubted, cart := tl.notes, tl.doubted, tl.cart
	tl.notes, tl.doubted, tl.cart = nil, nil, nil
	cartSettled := len(cart) > 0
	if len(notes) == 0 && len(doubted) == 0 && !cartSettled {
		return
	}
	switch {
	case tl.changed || cartSettled || tl.run < RecordedRecoveries:
	case tl.run == RecordedRecoveries:
		notes = append(notes, ordersdb.Note{At: time.Now(), Step: orders.StepRecovery, Outcome: orders.StepError,
			Detail: fmt.Sprintf("recovery run %d left the order as it was; later runs that do too are not recorded here "+
				"(recover-orders logs their failed tries with the order id)", tl.run)})
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	var err error
	switch {
	case len(doubted) > 0:
		err = s.db.RecordUnlessWritten(ctx, orderID, doubted, cart, notes...)
	case cartSettled:
		err = s.db.RecordCartSettled(ctx, orderID, cart, notes...)
	default:
		err = s.db.Record(ctx, orderID, notes...)
	}
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "record timeline", "order_id", orderID, "steps", len(doubted)+len(notes)+len(cart), "err", err.Error())
		return
	}
	if cartSettled && s.cfg.Cart != nil {
		// Settled: no removal of this order comes again, so its mark
		// (Cart.RemoveOrdered) can go. Left, it expires.
		if err := s.cfg.Cart.ForgetRemoval(ctx, orderID); err != nil {
			s.cfg.Log.WarnContext(ctx, "forget the cart removal's mark", "order_id", orderID, "err", err.Error())
		}
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
