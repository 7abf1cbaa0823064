// Package saga drives an order through the checkout: write it pending (with
// its idempotency key) → reserve-stock → charge-payment → commit-stock →
// confirmed + order.placed.v1, in that order, recording every step in the
// order's timeline; and compensates (release-stock, refund-payment) when a
// step is refused. Every remote step is idempotent by order id, so a saga may
// be re-driven from the start at any time: that is what recover-orders does
// for orders a crash or an outage left pending.
//
// Guarantees:
//   - A saga runs on a context detached from the client's, with its own
//     deadline: a client that hangs up never leaves half a saga.
//   - No remote call runs inside a database transaction; each status change,
//     its timeline entry, its outbox event and the idempotent response it
//     settles are one transaction (ordersdb.Store.Move).
//   - A captured payment ends either with a confirmed order or refunded.
//   - Two drivers never run one saga at once: the request owns a lease on the
//     saga while it runs, and recover-orders leases only expired ones.
package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
)

// Stock is the inventory side of the saga (reserve-stock, commit-stock,
// release-stock). Every method is idempotent by order id.
type Stock interface {
	Reserve(ctx context.Context, orderID uuid.UUID, lines []orders.Line) error
	Commit(ctx context.Context, orderID uuid.UUID) error
	Release(ctx context.Context, orderID uuid.UUID) error
}

// Charge is one charge-payment request.
type Charge struct {
	OrderID uuid.UUID
	UserID  uuid.UUID
	Amount  orders.Money
	Token   string
}

// Payments is the payments side of the saga (charge-payment, refund-payment).
// Both are idempotent by order id: the processor is charged at most once.
type Payments interface {
	Charge(ctx context.Context, c Charge) error
	Refund(ctx context.Context, orderID uuid.UUID) error
}

// Catalog prices products (get-product through the gateway).
type Catalog interface {
	GetProduct(ctx context.Context, id uuid.UUID) (catalogclient.Product, error)
}

// Cart reads and empties a user's cart, for orders placed without items.
type Cart interface {
	Lines(ctx context.Context, user uuid.UUID) ([]cart.Line, error)
	Clear(ctx context.Context, user uuid.UUID) error
}

// Config configures a Saga.
type Config struct {
	// Store is the orders database. Required.
	Store *ordersdb.Store
	// Stock, Payments and Catalog are the other services. Required.
	Stock    Stock
	Payments Payments
	Catalog  Catalog
	// Cart orders the caller's cart when a request has no items; nil refuses
	// such requests with 422.
	Cart Cart
	// Log receives step failures. Default slog.Default().
	Log *slog.Logger
	// Timeout is the deadline of one saga run, detached from the client
	// (default 20s; keep it below the function's exec_timeout).
	Timeout time.Duration
	// Attempts is how many times a step that failed transiently is tried
	// within one run (default 3).
	Attempts int
	// Backoff is the pause before the second attempt; it doubles (default 200ms).
	Backoff time.Duration
	// KeyWait is how long a request waits for another request with the same
	// Idempotency-Key to finish before answering request_in_progress (default 5s).
	KeyWait time.Duration
	// RecoverAfter is how long an order must have been pending before
	// recover-orders drives it (RECOVER_AFTER, default 2m). It must exceed
	// Timeout, so recovery never races a live request.
	RecoverAfter time.Duration
}

func (c *Config) setDefaults() {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Timeout <= 0 {
		c.Timeout = 20 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.Backoff <= 0 {
		c.Backoff = 200 * time.Millisecond
	}
	if c.KeyWait <= 0 {
		c.KeyWait = 5 * time.Second
	}
	if c.RecoverAfter <= 0 {
		c.RecoverAfter = 2 * time.Minute
	}
}

// Saga places, cancels and recovers orders. It is safe for concurrent use.
type Saga struct {
	cfg Config
	db  *ordersdb.Store
}

// New returns a saga for cfg.
func New(cfg Config) (*Saga, error) {
	cfg.setDefaults()
	if cfg.Store == nil || cfg.Stock == nil || cfg.Payments == nil || cfg.Catalog == nil {
		return nil, errors.New("saga: Store, Stock, Payments and Catalog are required")
	}
	if cfg.RecoverAfter <= cfg.Timeout {
		return nil, fmt.Errorf("saga: RecoverAfter (%s) must exceed the saga timeout (%s)", cfg.RecoverAfter, cfg.Timeout)
	}
	return &Saga{cfg: cfg, db: cfg.Store}, nil
}

// lease is how long a live request owns its saga: recovery leaves it alone
// at least that long.
func (s *Saga) lease() time.Duration { return s.cfg.Timeout + 10*time.Second }

// Response is the HTTP answer of a checkout: what was stored for its
// idempotency key, or what the saga ended with.
type Response struct {
	Status   int
	Body     []byte
	Replayed bool // the answer of an earlier request with the same key
}

// Place runs a checkout for the caller. Problems found before an order exists
// (validation 422, unknown product 422, an empty cart 422, idempotency
// conflicts 409, the catalog down 503) are returned as errors; once the order
// exists the answer is a Response: 201 confirmed, 402 payment_declined, 409
// out_of_stock, or 202 with the pending order when a service stayed
// unavailable (recover-orders will finish it). With a key, the same request
// gets the same answer; the stored answer is settled in the same transaction
// as the order's final status.
func (s *Saga) Place(ctx context.Context, who auth.Identity, req orders.PlaceRequest, key string) (Response, error) {
	if err := req.Validate(); err != nil {
		return Response{}, err
	}
	if key != "" {
		if err := orders.ValidKey(key); err != nil {
			return Response{}, err
		}
		stored, err := s.db.ClaimKey(ctx, who.UserID, key, req.Hash(), s.cfg.KeyWait)
		if err != nil {
			return Response{}, err
		}
		if stored != nil {
			return Response{Status: stored.Status, Body: stored.Body, Replayed: true}, nil
		}
	}
	// From here on the client may hang up: nothing of the checkout depends on it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	o, err := s.create(ctx, who.UserID, req, key)
	if err != nil {
		if key != "" {
			if rerr := s.db.ReleaseKey(ctx, who.UserID, key); rerr != nil {
				s.cfg.Log.ErrorContext(ctx, "release idempotency key", "err", rerr.Error())
			}
		}
		return Response{}, err
	}
	o, detail := s.drive(ctx, o.ID)
	status, body := render(o, detail)
	return Response{Status: status, Body: body}, nil
}

// create prices the request and writes the pending order.
func (s *Saga) create(ctx context.Context, userID uuid.UUID, req orders.PlaceRequest, key string) (orders.Order, error) {
	items, fromCart := req.Items, false
	if items == nil {
		if s.cfg.Cart == nil {
			return orders.Order{}, fault.E(fault.Invalid, "invalid_request", "items are required")
		}
		lines, err := s.cfg.Cart.Lines(ctx, userID)
		if err != nil {
			return orders.Order{}, err
		}
		if len(lines) == 0 {
			return orders.Order{}, fault.E(fault.Invalid, "cart_empty", "the cart is empty; add items or send items")
		}
		for _, l := range lines {
			items = append(items, orders.ItemRequest{ProductID: l.ProductID, Quantity: l.Quantity})
		}
		fromCart = true
	}
	if err := orders.ValidateItems(items); err != nil {
		return orders.Order{}, err
	}
	prices := make(map[uuid.UUID]orders.Money, len(items))
	for _, it := range items {
		p, err := s.cfg.Catalog.GetProduct(ctx, it.ProductID)
		if fault.KindOf(err) == fault.NotFound {
			return orders.Order{}, fault.Wrap(err, fault.Invalid, "unknown_product", "unknown product "+it.ProductID.String())
		}
		if err != nil {
			return orders.Order{}, err
		}
		prices[it.ProductID] = orders.Money{Amount: p.Price.Amount, Currency: p.Price.Currency}
	}
	lines, total, err := orders.Price(items, prices)
	if err != nil {
		return orders.Order{}, err
	}
	o, err := orders.New(userID, lines, total, req.ShippingAddress, time.Now())
	if err != nil {
		return o, err
	}
	if err := s.db.Create(ctx, o, req.Payment.Token, fromCart, key, s.lease()); err != nil {
		return o, err
	}
	return o, nil
}

// Drive resumes the saga of an order from its persisted state and returns the
// order as it ends this run: still pending when a service stayed unavailable
// (a later run finishes it). It settles an owed compensation first. Safe to
// call on an order in any status.
func (s *Saga) Drive(ctx context.Context, orderID uuid.UUID) (orders.Order, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	if _, err := s.db.LoadSaga(ctx, orderID); err != nil {
		return orders.Order{}, err
	}
	o, _ := s.drive(ctx, orderID)
	return o, nil
}

// drive runs the steps and returns the order and a detail for its answer.
func (s *Saga) drive(ctx context.Context, orderID uuid.UUID) (orders.Order, string) {
	sg, err := s.db.LoadSaga(ctx, orderID)
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "load saga", "order_id", orderID, "err", err.Error())
		return sg.Order, ""
	}
	o := sg.Order
	if sg.Compensation == "pending" {
		s.compensate(ctx, o, true)
	}
	if o.Status != orders.Pending {
		return o, ""
	}
	if sg.PaymentToken == "" { // cannot happen: the token is cleared only when the order leaves pending
		return s.fail(ctx, o, orders.Cancelled, orders.ReasonRejected, "", "the saga lost its payment token", true)
	}

	err = s.step(ctx, o.ID, orders.StepReserve, func(ctx context.Context) error { return s.cfg.Stock.Reserve(ctx, o.ID, o.Items) })
	switch {
	case err == nil:
	case fault.Is(err, fault.Conflict, "reservation_released"):
		// An earlier run's hold expired: commit-stock takes the stock again if it can.
	case fault.Is(err, fault.Conflict, "out_of_stock"):
		return s.fail(ctx, o, orders.Cancelled, orders.ReasonOutOfStock, "", safeMessage(err), false)
	case retryable(err):
		return o, ""
	default:
		return s.fail(ctx, o, orders.Cancelled, orders.ReasonRejected, "", "reserve-stock refused the order", false)
	}

	err = s.step(ctx, o.ID, orders.StepCharge, func(ctx context.Context) error {
		return s.cfg.Payments.Charge(ctx, Charge{OrderID: o.ID, UserID: o.UserID, Amount: o.Total, Token: sg.PaymentToken})
	})
	switch {
	case err == nil:
	case fault.KindOf(err) == fault.PaymentRequired:
		return s.fail(ctx, o, orders.PaymentFailed, orders.ReasonPaymentDeclined, events.OrderPaymentFailed, "the payment was declined", false)
	case fault.KindOf(err) == fault.Invalid:
		return s.fail(ctx, o, orders.PaymentFailed, orders.ReasonInvalidToken, events.OrderPaymentFailed, "the payment token was refused", false)
	case retryable(err):
		return o, ""
	default:
		return s.fail(ctx, o, orders.PaymentFailed, orders.ReasonRejected, events.OrderPaymentFailed, "charge-payment refused the order", true)
	}

	err = s.step(ctx, o.ID, orders.StepCommit, func(ctx context.Context) error { return s.cfg.Stock.Commit(ctx, o.ID) })
	switch {
	case err == nil:
	case fault.Is(err, fault.Conflict, "out_of_stock"), fault.KindOf(err) == fault.NotFound:
		return s.fail(ctx, o, orders.Cancelled, orders.ReasonOutOfStock, "", "the stock reservation expired and the stock is gone", true)
	case retryable(err):
		return o, ""
	default:
		return s.fail(ctx, o, orders.Cancelled, orders.ReasonRejected, "", "commit-stock refused the order", true)
	}

	o, err = s.db.Move(ctx, o.ID, ordersdb.Transition{To: orders.Confirmed, Step: orders.StepConfirmed,
		Detail: "stock committed and payment captured", Event: events.OrderPlaced, Respond: responder("")})
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "confirm order", "order_id", orderID, "err", err.Error())
		return sg.Order, "" // still pending: recovery confirms it (every step above is idempotent)
	}
	if sg.FromCart && s.cfg.Cart != nil && o.Status == orders.Confirmed {
		outcome, detail := orders.OutcomeOK, "the ordered cart was emptied"
		if err := s.cfg.Cart.Clear(ctx, o.UserID); err != nil {
			outcome, detail = orders.OutcomeError, "the cart could not be emptied"
			s.cfg.Log.WarnContext(ctx, "clear cart", "order_id", o.ID, "err", err.Error())
		}
		s.note(ctx, o.ID, orders.StepCart, outcome, detail)
	}
	return o, ""
}

// fail ends a pending order in status to, then compensates: the stock is
// always released, the payment refunded when refund is set. The owed
// compensation is persisted with the status change, so a crash before it is
// settled leaves it to recover-orders.
func (s *Saga) fail(ctx context.Context, o orders.Order, to orders.Status, reason, event, detail string, refund bool) (orders.Order, string) {
	moved, err := s.db.Move(ctx, o.ID, ordersdb.Transition{To: to, Reason: reason, Step: "order." + string(to),
		Detail: detail, Event: event, Compensation: "pending", Respond: responder(detail)})
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "fail order", "order_id", o.ID, "err", err.Error())
		return o, detail // still pending: recovery re-drives it
	}
	s.compensate(ctx, moved, refund)
	return moved, detail
}

// compensate releases the order's stock and, when refund is set, refunds its
// payment, then marks the compensation settled. Both calls are idempotent, so
// compensating twice restocks and refunds once.
func (s *Saga) compensate(ctx context.Context, o orders.Order, refund bool) {
	err := s.step(ctx, o.ID, orders.StepRelease, func(ctx context.Context) error { return s.cfg.Stock.Release(ctx, o.ID) })
	if err == nil && refund {
		err = s.step(ctx, o.ID, orders.StepRefund, func(ctx context.Context) error { return s.cfg.Payments.Refund(ctx, o.ID) })
	}
	if err != nil {
		return // stays owed: recover-orders settles it
	}
	if err := s.db.SettleCompensation(ctx, o.ID); err != nil {
		s.cfg.Log.ErrorContext(ctx, "settle compensation", "order_id", o.ID, "err", err.Error())
	}
}

// step runs one remote call, retrying transient failures, and records each
// attempt's outcome in the timeline.
func (s *Saga) step(ctx context.Context, orderID uuid.UUID, name string, call func(context.Context) error) error {
	var err error
	for attempt := 1; attempt <= s.cfg.Attempts; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(s.cfg.Backoff << (attempt - 2)):
			}
		}
		err = call(ctx)
		switch {
		case err == nil:
			s.note(ctx, orderID, name, orders.OutcomeOK, "")
			return nil
		case !retryable(err):
			s.note(ctx, orderID, name, orders.OutcomeRefused, safeMessage(err))
			return err
		}
		s.cfg.Log.WarnContext(ctx, "saga step failed", "order_id", orderID, "step", name, "attempt", attempt, "err", err.Error())
		s.note(ctx, orderID, name, orders.OutcomeError, fmt.Sprintf("attempt %d: %s", attempt, safeMessage(err)))
	}
	return err
}

func (s *Saga) note(ctx context.Context, orderID uuid.UUID, step, outcome, detail string) {
	if err := s.db.Record(ctx, orderID, step, outcome, detail); err != nil {
		s.cfg.Log.ErrorContext(ctx, "record timeline", "order_id", orderID, "step", step, "err", err.Error())
	}
}

// retryable reports whether a failed step may succeed if tried again.
func retryable(err error) bool {
	switch fault.KindOf(err) {
	case fault.Unavailable, fault.Timeout, fault.Internal:
		return true
	}
	return false
}

// safeMessage is the client-safe message of err (never the cause).
func safeMessage(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Kind != fault.Internal {
		return fe.Message
	}
	return "internal error"
}

// Cancel cancels a confirmed order for its owner or an admin: the order
// becomes cancelled with order.cancelled.v1 in one transaction, then its
// stock is restocked and its payment refunded (idempotent calls; an owed
// compensation is finished by recover-orders). Anyone else gets
// fault.NotFound; an order that is not confirmed — pending, payment_failed,
// or already cancelled — is fault.Conflict "not_cancellable", so a second
// cancel never refunds or restocks again.
func (s *Saga) Cancel(ctx context.Context, who auth.Identity, orderID uuid.UUID) (orders.Order, error) {
	o, err := s.db.Get(ctx, orderID)
	if err != nil {
		return o, err
	}
	if !o.VisibleTo(who.UserID, who.IsAdmin()) {
		return orders.Order{}, fault.E(fault.NotFound, "not_found", "no such order")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	by := "owner"
	if who.UserID != o.UserID {
		by = "admin"
	}
	o, err = s.db.Move(ctx, orderID, ordersdb.Transition{From: orders.Confirmed, To: orders.Cancelled,
		Reason: orders.ReasonCancelled, Step: orders.StepCancelled, Detail: "cancelled by the " + by,
		Event: events.OrderCancelled, Compensation: "pending"})
	if err != nil {
		return o, err
	}
	s.compensate(ctx, o, true)
	return o, nil
}

// Report is what one recovery run did.
type Report struct {
	Driven    int   `json:"driven"`
	Confirmed int   `json:"confirmed"`
	Failed    int   `json:"failed"`
	Pending   int   `json:"still_pending"`
	Purged    int64 `json:"purged_keys"`
}

// Recover drives every saga left unfinished — orders pending for longer than
// RecoverAfter, and orders still owing a compensation — one lease at a time,
// until limit orders were driven or the run has used its time budget (the
// saga Timeout), then purges expired idempotency keys. Concurrent runs split
// the work (ordersdb.Store.ClaimStale); the next run takes what is left.
func (s *Saga) Recover(ctx context.Context, limit int) (Report, error) {
	var rep Report
	budget := time.Now().Add(s.cfg.Timeout)
	for rep.Driven < limit && time.Now().Before(budget) {
		ids, err := s.db.ClaimStale(ctx, s.cfg.RecoverAfter, s.lease(), 1)
		if err != nil {
			return rep, err
		}
		if len(ids) == 0 {
			break
		}
		o, err := s.Drive(ctx, ids[0])
		if err != nil {
			s.cfg.Log.ErrorContext(ctx, "recover order", "order_id", ids[0], "err", err.Error())
			continue
		}
		rep.Driven++
		switch o.Status {
		case orders.Confirmed:
			rep.Confirmed++
		case orders.Pending:
			rep.Pending++
		default:
			rep.Failed++
		}
	}
	var err error
	rep.Purged, err = s.db.PurgeKeys(ctx)
	return rep, err
}

// responder renders the settled answer of an order (see render).
func responder(detail string) func(orders.Order) (int, []byte) {
	return func(o orders.Order) (int, []byte) { return render(o, detail) }
}

// render is THE answer of a checkout for an order's state: 201 with the
// confirmed order, 402 payment_declined, 409 out_of_stock, 422 for a refused
// order, 202 with a still-pending order. Problem answers name the order in
// their instance member, so the client can read its timeline.
func render(o orders.Order, detail string) (int, []byte) {
	var err error
	switch {
	case o.ID == uuid.Nil:
		err = fault.E(fault.Unavailable, "unavailable", "orders temporarily unavailable")
	case o.Status == orders.Confirmed:
		return encode(http.StatusCreated, o.View())
	case o.Status == orders.Pending:
		return encode(http.StatusAccepted, o.View())
	case o.Status == orders.PaymentFailed && o.Reason == orders.ReasonPaymentDeclined:
		err = fault.E(fault.PaymentRequired, "payment_declined", or(detail, "the payment was declined"))
	case o.Reason == orders.ReasonInvalidToken:
		err = fault.E(fault.Invalid, "invalid_payment_token", or(detail, "the payment token was refused"))
	case o.Reason == orders.ReasonOutOfStock:
		err = fault.E(fault.Conflict, "out_of_stock", or(detail, "not enough stock"))
	case o.Status == orders.Cancelled && o.Reason == orders.ReasonCancelled:
		err = fault.E(fault.Conflict, "not_cancellable", "the order was cancelled")
	default:
		err = fault.E(fault.Invalid, "order_rejected", or(detail, "the order was refused"))
	}
	p := fnhttp.ProblemFor(err)
	if o.ID != uuid.Nil {
		p.Instance = "/api/v1/orders/" + o.ID.String()
	}
	return encode(p.Status, p)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func encode(status int, v any) (int, []byte) {
	b, err := json.Marshal(v)
	if err != nil {
		return http.StatusInternalServerError, []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"code":"internal","detail":"internal error"}`)
	}
	return status, append(b, '\n')
}
