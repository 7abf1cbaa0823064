package orders

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
)

// Compensation is where the undo work of an order stands. A refused checkout
// or a cancellation leaves the order owing the other services its stock back
// and, when money may have been taken, a refund; recover-orders settles what
// a crash left owed. The values are what the orders database stores.
type Compensation string

// The compensation states.
const (
	CompensationNone Compensation = ""        // nothing was ever owed
	CompensationOwed Compensation = "pending" // the stock release (and refund) is still to be done
	CompensationDone Compensation = "done"    // everything owed was done
)

// Change is what a decision did to an order, for the store to write in the
// same transaction as the order (ordersdb.Store.Update). The zero Change means
// the decision changed nothing: the order already was where it was asked to go.
type Change struct {
	// Step and Detail are the timeline entry recording the change. When the
	// change ends a checkout, Detail is also what the checkout's answer says
	// (for a refused checkout: why, in words safe to show the buyer).
	Step, Detail string
	// Event, when not empty, is the type of the outbox event describing the
	// order after the change (Order.EventData).
	Event string
	// Compensation, when not CompensationNone, is the order's compensation
	// state from now on.
	Compensation Compensation
	// CartOwed says the order's lines are still to be taken out of the cart
	// it was ordered from: the saga sets it on the confirmation of a cart
	// order, so that the removal is owed in the confirmation's transaction
	// and recovery makes it if the driver dies before it.
	CartOwed bool
}

// None reports whether the decision changed nothing.
func (c Change) None() bool { return c == Change{} }

// Confirm confirms a pending order whose stock is committed and payment
// captured: order.placed.v1 tells the other services. Confirming a confirmed
// order changes nothing (two drivers may both finish one saga); any other
// status is fault.Conflict "invalid_transition".
func (o *Order) Confirm(now time.Time) (Change, error) {
	if o.Status == Confirmed {
		return Change{}, nil
	}
	if err := o.MoveTo(Confirmed, "", now); err != nil {
		return Change{}, err
	}
	return Change{Step: StepConfirmed, Detail: "stock reserved and payment captured", Event: events.OrderPlaced}, nil
}

// Failure is how a refused checkout ends its order.
type Failure struct {
	// Status is PaymentFailed or Cancelled; Reason says why (Reason* constants).
	Status Status
	Reason string
	// Detail explains the refusal to the buyer; it must be safe to show.
	Detail string
}

// Fail ends a pending order as f says and leaves its compensation owed, and
// tells the other services: order.payment_failed.v1 for a failed payment,
// order.cancelled.v1 with f's reason for an order cancelled before it was
// placed (out of stock, or refused), so that its buyer, who may have been
// answered 202 pending and charged since, learns how it ended (notify-user);
// update-product-stats counts nothing for a cancellation of an order it never
// saw placed. Until 2026-12-05 a cancellation wrote no event and the buyer of
// a pending order was never told. Failing an order that already has f's
// status changes nothing; an order that is neither pending nor in f's status
// is fault.Conflict "invalid_transition" (a confirmed order is never undone
// by a late refusal).
func (o *Order) Fail(f Failure, now time.Time) (Change, error) {
	if o.Status == f.Status {
		return Change{}, nil
	}
	if o.Status != Pending || (f.Status != PaymentFailed && f.Status != Cancelled) {
		return Change{}, fault.E(fault.Conflict, fault.CodeInvalidTransition,
			fmt.Sprintf("an order that is %s cannot become %s", o.Status, f.Status))
	}
	if f.Reason == ReasonCancelled {
		// Only Cancel gives it, to a confirmed order: the saga reads a
		// cancelled order with it as one that was confirmed first.
		return Change{}, fault.Internalf("orders: a pending order cannot fail as %q, which only Cancel gives", ReasonCancelled)
	}
	if err := o.MoveTo(f.Status, f.Reason, now); err != nil {
		return Change{}, err
	}
	if f.Status == PaymentFailed {
		return Change{Step: StepPaymentFailed, Detail: f.Detail, Event: events.OrderPaymentFailed, Compensation: CompensationOwed}, nil
	}
	return Change{Step: StepCancelled, Detail: f.Detail, Event: events.OrderCancelled, Compensation: CompensationOwed}, nil
}

// Cancel cancels a confirmed order for userID, who must be its owner unless
// admin is set: order.cancelled.v1 (with the items, so that sales can be
// un-counted) tells the other services, and the restock and refund are owed.
// Anyone else gets the fault.NotFound of an order that does not exist; an
// order that is not confirmed — pending, payment_failed or already cancelled
// — is fault.Conflict "not_cancellable", so a second cancel never refunds or
// restocks again.
func (o *Order) Cancel(userID uuid.UUID, admin bool, now time.Time) (Change, error) {
	if !o.VisibleTo(userID, admin) {
		return Change{}, fault.E(fault.NotFound, fault.CodeNotFound, "no such order")
	}
	if o.Status != Confirmed {
		return Change{}, fault.E(fault.Conflict, fault.CodeNotCancellable,
			fmt.Sprintf("an order that is %s cannot become %s", o.Status, Cancelled))
	}
	by := "owner"
	if userID != o.UserID {
		by = "admin"
	}
	if err := o.MoveTo(Cancelled, ReasonCancelled, now); err != nil {
		return Change{}, err
	}
	return Change{Step: StepCancelled, Detail: "cancelled by the " + by, Event: events.OrderCancelled,
		Compensation: CompensationOwed}, nil
}

// Outcome is how a checkout ended for its buyer. The saga decides the order's
// state; the outcome is that state read for the answer, which create-order
// renders.
type Outcome string

// The outcomes of a checkout.
const (
	OutcomeConfirmed    Outcome = "confirmed"             // stock reserved (sold by the sweep), payment captured
	OutcomePending      Outcome = "pending"               // a service stayed unavailable: recover-orders finishes it
	OutcomeDeclined     Outcome = "payment_declined"      // the processor declined the payment
	OutcomeTokenRefused Outcome = "invalid_payment_token" // the processor refused the payment token
	OutcomeOutOfStock   Outcome = "out_of_stock"          // not enough stock, at reservation or at commit
	OutcomeCancelled    Outcome = "cancelled"             // cancelled by its owner or an admin since
	OutcomeRejected     Outcome = "rejected"              // another service refused it for another reason
)

// Outcome reads how the checkout of o ended from its status and reason.
func (o Order) Outcome() Outcome {
	switch {
	case o.Status == Confirmed:
		return OutcomeConfirmed
	case o.Status == Pending:
		return OutcomePending
	case o.Status == PaymentFailed && o.Reason == ReasonPaymentDeclined:
		return OutcomeDeclined
	case o.Reason == ReasonInvalidToken:
		return OutcomeTokenRefused
	case o.Reason == ReasonOutOfStock:
		return OutcomeOutOfStock
	case o.Status == Cancelled && o.Reason == ReasonCancelled:
		return OutcomeCancelled
	}
	return OutcomeRejected
}

// Checkout is what a checkout came to, as its buyer is answered.
type Checkout struct {
	// Order is the order as it stood when the checkout was answered (a
	// replay shows it as it was then, even if it was cancelled since).
	Order Order
	// Detail is the Detail of the change that ended the checkout; empty for
	// a checkout still pending.
	Detail string
	// Replayed is set when this is the stored result of an earlier request
	// with the same Idempotency-Key.
	Replayed bool
}

// Outcome is how the checkout ended.
func (c Checkout) Outcome() Outcome { return c.Order.Outcome() }
