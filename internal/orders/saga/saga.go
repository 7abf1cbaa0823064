// Package saga drives an order through the checkout: write it pending (with
// its idempotency key, in one transaction) while reserve-stock holds its
// stock → charge-payment → confirmed + order.placed.v1, in that order,
// recording every step in the order's timeline; and compensates
// (release-stock, refund-payment) when a step is refused. The confirmed
// order's hold becomes a sale later, in batches (expire-reservations asks
// order-statuses); commit-stock runs in the checkout only to take the stock
// again when an earlier run's hold was given back (steps.go). Every remote
// step is idempotent by order id, so a saga may be re-driven from the start
// at any time: that is what recover-orders does for orders a crash or an
// outage left pending.
//
// The pending order must be durable before money moves (recovery finds a
// charge through its order), but not before stock is held: a hold whose
// order is never written is given back past its expiry (expire-reservations
// finds no such order), as nothing ever sells it; and reserve-stock needs
// the products and quantities, not the prices. So for a request that names
// its items, reserve-stock's first try starts as soon as the request is
// valid, beside pricing and the first write of the order, and neither
// pricing nor the order's write costs a checkout latency of its own beyond
// the hold's (see Place).
//
// The saga decides; it does not render. It returns the order and how its
// checkout ended (orders.Checkout, orders.Outcome), and create-order turns that
// into HTTP. The steps are data (steps.go): each remote call with what each
// of its refusals means for the order, driven by one loop.
//
// Guarantees:
//   - A saga runs on a context detached from the client's, with its own
//     deadline: a client that hangs up never leaves half a saga.
//   - No remote call runs inside a database transaction; each status change
//     is decided by the domain (orders.Order.Confirm, Fail, Cancel) and
//     written with its timeline entry, its outbox event and the checkout its
//     idempotency key settles in one transaction (ordersdb.Store.Update).
//   - No money moves for an order that is not written: charge-payment is
//     called only after the pending order's transaction committed.
//   - A hold taken for an order that is never written is given back: at
//     once when a twin holds the key, by its expiry otherwise.
//   - A captured payment ends either with a confirmed order or refunded.
//   - Two drivers never run one saga at once: the request owns a short lease
//     on the saga, renewed while it runs (Config.Lease), and recover-orders
//     leases only expired ones (and a pending order only once it is older
//     than RecoverAfter, which exceeds the request's Timeout), for as short
//     a lease, renewed while its run drives the order (keepClaim). This
//     holds while each driver reaches the database: a run whose renewals
//     fail for longer than the lease loses its claim, and drives beside
//     the run that took the order over until a renewal reaches the
//     database and finds the claim taken; its drive is then cut and stops
//     at its next step, with no decision (a step cut in flight, a charge
//     above all, is unknown: never refused, nor noted as failed:
//     claimLost), leaving the order to that run. Each step is idempotent
//     and each change of status is decided under the order's row lock, so
//     the overlap repeats work but does not charge, refund or confirm
//     twice (docs/checkout.md, "Recovery").
package saga

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/fault"
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

// Cart reads a user's cart, for orders placed without items, and takes out
// of it what such an order bought.
type Cart interface {
	Lines(ctx context.Context, user uuid.UUID) ([]cart.Line, error)
	RemoveOrdered(ctx context.Context, user, order uuid.UUID, lines []cart.Line, remember time.Duration) error
	// ForgetRemoval lets the store forget that order's lines were taken
	// out, once the removal is recorded as settled.
	ForgetRemoval(ctx context.Context, order uuid.UUID) error
}

// Limiter counts requests per key (ratelimit.Limiter): Allow returns the
// refusal to answer (fault.RateLimited) once key is past its limit, and
// Refused, without counting or waiting, the refusal Allow already gave key in
// the current window (nil when it gave none).
type Limiter interface {
	Allow(ctx context.Context, key string) error
	Refused(key string) error
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
	// Limit counts every checkout against the caller's verified subject
	// (ratelimit.Limiter); past it Place answers its refusal and writes
	// nothing. Nil: no limit.
	Limit Limiter
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
	// Lease is how long the saga of an order a request placed stays leased
	// to that request without a renewal (default 4s). The request renews it
	// every third of it while it drives the order (keepLease), so a live
	// checkout keeps it however long it runs, and one that dies (or loses
	// its database) leaves it to run out within Lease: from then on a retry
	// with its Idempotency-Key is answered the pending order (CheckKey) rather
	// than request_in_progress. Below KeyWait, a retry made right after the
	// request died is answered within its own wait. A recovery run claims an
	// order for as long, and renews its claim the same way while it drives
	// it (keepClaim): the order of a run that dies is claimable again within
	// Lease.
	Lease time.Duration
	// RecoverAfter is how long an order must have been pending before
	// recover-orders drives it (RECOVER_AFTER, default 2m). It must exceed
	// LongestDrive(Timeout), the longest a request drives its order (the
	// timeout and the steps after it: 27 s at the defaults), so recovery
	// never races a live request.
	RecoverAfter time.Duration
	// GiveUpAfter is how long recovery drives a pending order forward
	// (GIVE_UP_AFTER, default 12h): an order still pending after it ends
	// payment_failed (reason expired), its hold released and its charge key
	// voided, refunding a charge the processor made. It must exceed
	// RecoverAfter and be at most MaxGiveUpAfter, below the card processor's
	// memory of an idempotency key (Stripe's: 24 h): a charge retried after
	// the processor forgot its key could charge twice.
	GiveUpAfter time.Duration
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
	if c.Lease <= 0 {
		c.Lease = 4 * time.Second
	}
	if c.RecoverAfter <= 0 {
		c.RecoverAfter = 2 * time.Minute
	}
	if c.GiveUpAfter <= 0 {
		c.GiveUpAfter = 12 * time.Hour
	}
}

// MaxGiveUpAfter bounds Config.GiveUpAfter: a card processor remembers an
// idempotency key for a day or so (Stripe: 24 h), and the refund of an order
// given up on must still find its charge's key.
const MaxGiveUpAfter = 20 * time.Hour

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
	if longest := LongestDrive(cfg.Timeout); cfg.RecoverAfter <= longest {
		return nil, fmt.Errorf("saga: RecoverAfter (%s) must exceed the longest drive of a request (%s: the saga timeout %s and %s of steps after it, LongestDrive)",
			cfg.RecoverAfter, longest, cfg.Timeout, longest-cfg.Timeout)
	}
	if cfg.GiveUpAfter <= cfg.RecoverAfter || cfg.GiveUpAfter > MaxGiveUpAfter {
		return nil, fmt.Errorf("saga: GiveUpAfter (%s) must exceed RecoverAfter (%s) and be at most %s", cfg.GiveUpAfter, cfg.RecoverAfter, MaxGiveUpAfter)
	}
	return &Saga{cfg: cfg, db: cfg.Store}, nil
}

// keepLease renews the lease of the saga of order id, which the caller's
// request wrote (ordersdb.Store.Create) and drives, every third of
// Config.Lease until the returned stop is called, or until the lease is no
// longer the request's to renew (the order left pending, or a recovery run
// claimed it: ordersdb.Store.RenewLease). stop ends the renewals, cutting one
// in flight, and returns once none runs any longer, so that no renewal
// follows a release of the lease (ordersdb.Store.ReleaseLease); a renewal cut
// while PostgreSQL runs it may still commit (a cancel is best effort), which
// holds the key for at most Lease more. A renewal that fails is logged and
// tried again at the next tick: should the orders database stay unreachable
// for longer than the lease, a retry with the order's key may be answered the
// pending order while this request still drives it (as once it answers 202),
// and recovery still waits for RecoverAfter.
func (s *Saga) keepLease(ctx context.Context, id uuid.UUID) (stop func()) {
	return s.keep(ctx, id, "renew the lease of the order the request drives", func(ctx context.Context) (bool, error) {
		return s.db.RenewLease(ctx, id, s.cfg.Lease)
	})
}

// keepClaim is keepLease for a recovery run that claimed c
// (ordersdb.Store.ClaimStale, for Config.Lease): it renews the claim every
// third of Config.Lease while the run drives the order, until stop is called
// or the claim is no longer the run's (another run claimed the order after
// this run's claim ran out: ordersdb.Store.RenewClaim fences it off). So a
// live run keeps its claim however long it drives, and the order of a run
// that dies is claimable again within Lease.
//
// When a renewal finds the claim taken over (RenewClaim answers false: this
// run's renewals failed for longer than the lease, and another run claimed
// the order), keepClaim calls lost, once, and renews no more; recoverOne
// then cuts its drive (errClaimLost). A renewal that fails is no loss: the
// claim may still hold, and the next tick tries again.
func (s *Saga) keepClaim(ctx context.Context, c ordersdb.Claim, lost func()) (stop func()) {
	return s.keep(ctx, c.OrderID, "renew the recovery's claim of the order it drives", func(ctx context.Context) (bool, error) {
		kept, err := s.db.RenewClaim(ctx, c.OrderID, c.Attempts, s.cfg.Lease)
		if err == nil && !kept {
			s.cfg.Log.WarnContext(ctx, "another recovery run claimed the order this run drives; this run stops driving it", "order_id", c.OrderID, "attempt", c.Attempts)
			lost()
		}
		return kept, err
	})
}

// errClaimLost is the cause with which recoverOne cuts the drive of an order
// whose claim another recovery run took over (keepClaim): the drive stops at
// its next step and leaves the order as it stands to that run (see claimLost).
var errClaimLost = errors.New("the recovery's claim of the order was taken over by another run")

// claimLost reports whether ctx is a recovery's drive cut because another
// run took its order over. drive then stops before its next step and makes
// no decision: what the cut step did is unknown (a charge cut in flight may
// still capture), and the run that took the order over makes every step
// again, each idempotent by order id, and settles it.
func claimLost(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errClaimLost)
}

// keep calls renew every third of Config.Lease until the returned stop is
// called or renew reports the lease is no longer the caller's; a failed
// renewal is logged (what says which) and tried again at the next tick. See
// keepLease.
func (s *Saga) keep(ctx context.Context, id uuid.UUID, what string, renew func(context.Context) (bool, error)) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		every := max(s.cfg.Lease/3, time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, every)
			kept, err := renew(rctx)
			rcancel()
			switch {
			case err != nil && ctx.Err() == nil:
				s.cfg.Log.WarnContext(ctx, what, "order_id", id, "err", err.Error())
			case err == nil && !kept:
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// Place runs a checkout for the caller. Problems found before an order exists
// (the caller's limit 429, validation 422, unknown product 422, an empty cart
// 422, a cart in more than one currency 409 currency_mismatch, idempotency
// conflicts 409, the catalog down 503) are returned as errors, and so is an
// orders database that fails the order's write when the order is known not
// to be written. Otherwise the
// result is the checkout: the order confirmed, failed for a reason
// (orders.Outcome), or still pending when a service stayed unavailable (or,
// without a key, when the orders database cannot tell whether the order was
// written; with one, that is an error: the key asked again tells). With a
// key, the same request gets the same checkout (Replayed): the key is written
// with the pending order, in its transaction, and settled in the same
// transaction as the order's final status; a checkout answered pending is
// replayed as its order now stands, pending, once its request has released
// its lease (drivePlaced).
//
// Before anything is written, the caller's limit is counted, the key read
// (ordersdb.Store.CheckKey: one read, no commit) and the request priced, all
// at once (see admit); a replay, a reused key or one still running is answered
// from the key, whatever pricing found, so it does not depend on the catalog
// or the cart. When two requests with a free key race, the unique index lets
// one write its order; the other's write (ordersdb.Store.Create) finds the key
// taken, writes nothing, and reads the key again: it replays the winner's
// checkout or, after KeyWait, answers request_in_progress.
//
// The first try of reserve-stock runs on the saga's context beside the
// first write of the order; for a request that names its items (not its
// cart) it starts even earlier, with admit, under the order id the order
// will be written with. A request answered before anything is written (a
// refused limit, a replay, a reused key, a pricing failure) gives that hold
// back at once (best effort: its expiry is the backstop); one that finds its
// key held by a running checkout gives it back before it waits (see admit). Place waits for the try and the write; the write decides
// what becomes of the try:
//   - written: drive takes the try as reserve-stock's first (its timeline
//     entry and metrics as if made there), and goes on from it: a held or a
//     refused reservation is not asked again, a transient failure is tried
//     again after the backoff;
//   - the key is taken (nothing written): the hold is released at once (best
//     effort: its expiry is the backstop), and a later write in the loop is
//     made under a new order id, without a reservation beside it, so no
//     order is ever written with a hold given back;
//   - the write is known not to be written (ordersdb.NotWritten: it never
//     went out, or PostgreSQL answered an error): the hold is released at
//     once, and the error returned;
//   - the write failed otherwise (the order may or may not be written: its
//     answer may be what was lost): the order is looked up before Place
//     answers (settleWrite). Written, the saga goes on; not written, the hold
//     is released and the error returned; still unknown, the order is
//     answered pending, as it was to be written (with an Idempotency-Key,
//     503: the key asked again tells), and its hold kept: a
//     written pending order is driven by recover-orders (reserve-stock
//     answers the hold it has); the hold of an order never written expires
//     (as when create-order dies between the two).
//
// So a twin that loses the key, a replay or a request refused before the
// write holds stock for a moment, which another checkout may need: a nearly sold-out product can refuse a
// reservation out_of_stock that a sequential saga would have granted (an
// undersell, as the hold of any checkout that then fails can cause; never an
// oversell).
func (s *Saga) Place(ctx context.Context, who auth.Identity, req orders.PlaceRequest, key string) (orders.Checkout, error) {
	deadline := time.Now().Add(s.cfg.KeyWait)
	// Pricing and the saga run on a context detached from the client's, so a
	// client that hangs up never leaves half a checkout.
	reqCtx := ctx
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	a, err := s.admit(reqCtx, ctx, who, req, key)
	if err != nil || a.settled != nil {
		if h := a.held; h != nil {
			// Nothing will be written under the hold's order id: give it back.
			t, _ := h.wait()
			s.giveBack(ctx, h.orderID, t)
		}
		return checkout(a.settled), err
	}
	sg := a.saga
	// reserve-stock's first try runs beside pricing (admit) and the first
	// write of the order (see the package comment for why that is safe):
	// whatever the write answers, it is waited for, so it never outlives
	// Place.
	var reserved func() (tried, error)
	if h := a.held; h != nil && sameLines(h.lines, sg.Order.Items) {
		sg.Order.ID = h.orderID
		reserved = h.wait
	} else {
		if h != nil {
			// Cannot happen (the order's lines are the request's, in its
			// order); should it, the hold is not the order's: give it back.
			t, _ := h.wait()
			s.giveBack(ctx, h.orderID, t)
		}
		o := sg.Order
		reserved = async(func() (tried, error) {
			return try(ctx, orders.StepReserve, func(ctx context.Context) error { return s.cfg.Stock.Reserve(ctx, o.ID, o.Items) }), nil
		})
	}
	for {
		err := s.db.Create(ctx, ordersdb.Placement{Order: sg.Order, PaymentToken: sg.PaymentToken, FromCart: sg.FromCart,
			Key: key, RequestHash: a.hash, Lease: s.cfg.Lease, Skipped: sg.Skipped})
		if !errors.Is(err, ordersdb.ErrKeyTaken) {
			var kept func()
			if err == nil || !ordersdb.NotWritten(err) {
				// The lease is renewed from now on, while the first try
				// of reserve-stock is waited for too, and while a write
				// whose answer was lost is settled (a renewal of an order
				// never written finds none and ends the renewals).
				kept = s.keepLease(ctx, sg.Order.ID)
			}
			var first *tried
			if reserved != nil {
				t, _ := reserved()
				first = &t
			}
			if err != nil && !ordersdb.NotWritten(err) {
				// The order may or may not be written (the batch went out,
				// its answer did not come back): settle that before
				// answering (see Place).
				return s.settleWrite(ctx, sg, first, key, err, kept)
			}
			if err != nil {
				// The order is certainly not written (the write never went
				// out: an outage, every connection taken; or PostgreSQL
				// refused it), and its hold is given back now.
				if first != nil {
					s.giveBack(ctx, sg.Order.ID, *first)
				}
				return orders.Checkout{}, err
			}
			return s.drivePlaced(ctx, sg, first, key, kept)
		}
		if reserved != nil {
			// Nothing was written: give the hold back now rather than at its
			// expiry, and write any later attempt under a new order id, so
			// that no order is ever written with a hold given back.
			t, _ := reserved()
			s.giveBack(ctx, sg.Order.ID, t)
			reserved = nil
			id, err := uuid.NewV7()
			if err != nil {
				return orders.Checkout{}, fault.Internalf("order id: %w", err)
			}
			sg.Order.ID = id
		}
		// Another request holds the key: replay it, refuse, or wait for it.
		settled, err := s.db.CheckKey(reqCtx, who.UserID, key, a.hash, max(time.Until(deadline), 0))
		if err != nil || settled != nil {
			return checkout(settled), err
		}
		if time.Now().After(deadline) {
			return orders.Checkout{}, ordersdb.ErrKeyInProgress
		}
		// Free again (the holder's key expired or was purged): try once more.
	}
}

// drivePlaced drives the saga of the order a checkout wrote (sg) under the
// lease Create gave the request, renewed while it drives (kept stops the
// renewals keepLease started; nil: they start here). When it is answered
// pending (202), the request stops driving it: the renewals stop and the
// lease is released (ordersdb.Store.ReleaseLease)
// so that a retry with its Idempotency-Key replays the pending order at once
// rather than wait KeyWait for a request that has finished and answer
// request_in_progress. Should the release fail, such a retry gets
// request_in_progress until the lease runs out (Config.Lease), then the
// replay. Without a key no request can be replayed: nothing is released.
// The release takes the cart clear's share of LongestDrive: a confirmed
// order clears its cart, a pending one never does.
func (s *Saga) drivePlaced(ctx context.Context, sg ordersdb.Saga, first *tried, key string, kept func()) (orders.Checkout, error) {
	if kept == nil {
		kept = s.keepLease(ctx, sg.Order.ID)
	}
	c, err := s.drive(ctx, sg.Order.ID, &sg, first)
	kept()
	if err == nil && key != "" && c.Order.Status == orders.Pending {
		// On a context of its own: the saga's deadline may be what ended
		// the drive.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clearTimeout)
		defer cancel()
		if rerr := s.db.ReleaseLease(rctx, sg.Order.ID); rerr != nil {
			s.cfg.Log.WarnContext(ctx, "release the lease of an order answered pending", "order_id", sg.Order.ID, "err", rerr.Error())
		}
	}
	return c, err
}

// settleWrite answers a checkout whose order's write (ordersdb.Store.Create)
// failed after it went out: the batch may have committed with its answer
// lost (the connection reset after COMMIT, or the saga's deadline cut the
// call). Answering 503 then would tell the customer the checkout failed while
// recover-orders later charges and confirms the order, and a retry without an
// Idempotency-Key would place and charge a second one. So the order is looked
// up (lookUp) first:
//   - written: the answer was lost, the order is pending and leased to this
//     request (Create wrote the lease), so the saga goes on from first as if
//     the write had answered;
//   - not written: the hold is given back and werr answered (503), as for a
//     write that never reached the database. lookUp reads that only once the
//     write can no longer commit (it stops the write's server process
//     first), so the answer holds;
//   - still unknown (the database stays unreachable): with an Idempotency-Key,
//     503 (outcomeUnknown): asking again with the same key is safe, and
//     answers the order if it was written (the key is written with it) or
//     places it if it was not. Without a key, a retry could place a second
//     order: the order is answered as it was to be written, pending, so the
//     client asks for it (GET /api/v1/orders/{id}) rather than place it
//     again. Either way its hold is kept: a written order is finished by
//     recover-orders, the hold of one never written expires.
//
// kept stops the lease's renewals (keepLease), which run from the write on so
// that the request keeps its key while it settles the write; written, the
// drive renews it from then on, otherwise the renewals stop here and an
// unknown write's lease runs out within Config.Lease, after which the key
// answers the order.
func (s *Saga) settleWrite(ctx context.Context, sg ordersdb.Saga, first *tried, key string, werr error, kept func()) (orders.Checkout, error) {
	written, err := s.lookUp(ctx, sg.Order.ID, werr)
	if err == nil {
		s.cfg.Log.WarnContext(ctx, "the answer of the order's write was lost; it was written", "order_id", sg.Order.ID, "err", werr.Error())
		// The renewals started at the write may have ended already: one
		// that ran before the write's commit was visible found no order
		// (lookUp waits such a write out). So they start again.
		kept()
		return s.drivePlaced(ctx, written, first, key, nil)
	}
	kept()
	switch {
	case fault.KindOf(err) == fault.NotFound:
		if first != nil {
			s.giveBack(ctx, sg.Order.ID, *first)
		}
		return orders.Checkout{}, werr
	}
	answer := "answered pending"
	if key != "" {
		answer = "answered unavailable, to be asked again with its key"
	}
	s.cfg.Log.ErrorContext(ctx, "the order's write may have committed: "+answer, "order_id", sg.Order.ID,
		"err", werr.Error(), "lookup_err", err.Error())
	if key != "" {
		return orders.Checkout{}, fault.Wrap(werr, fault.Unavailable, fault.CodeUnavailable, outcomeUnknown)
	}
	return orders.Checkout{Order: sg.Order}, nil
}

// outcomeUnknown is the detail of settleWrite's 503 for a checkout with an
// Idempotency-Key whose order may or may not have been written.
const outcomeUnknown = "orders temporarily unavailable; whether the order was placed is not known yet: retry with the same Idempotency-Key"

// doubtTimeout bounds lookUp, which runs after a write failed and may
// outlive the saga's deadline (the deadline may be what cut the write).
const doubtTimeout = 2 * time.Second

// lookUp reads the saga of an order after a write about it failed with werr
// without saying whether it committed: the saga as stored, fault.NotFound
// when the order does not exist, or the last error when the orders database
// could not tell within doubtTimeout. It first settles werr
// (ordersdb.Store.Settle): the write's server process may still be running
// it, behind a lock or waiting for its commit to reach the disk, and commit
// it after a read that found nothing. It asks again while the database
// fails, on a context of its own that the saga's deadline does not cut.
func (s *Saga) lookUp(ctx context.Context, orderID uuid.UUID, werr error) (ordersdb.Saga, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), doubtTimeout)
	defer cancel()
	settled := false
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		var sg ordersdb.Saga
		var err error
		if !settled {
			err = s.db.Settle(ctx, werr)
			settled = err == nil
		}
		if settled {
			if sg, err = s.db.LoadSaga(ctx, orderID); err == nil || fault.KindOf(err) == fault.NotFound {
				return sg, err
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return sg, err
		case <-t.C:
		}
	}
}

// giveBack releases the hold reserve-stock may have taken (t) for an order
// that was never written (its twin holds the key, or the orders database
// could not be reached). A refused reservation
// holds nothing. Best effort: a hold this misses is given back by its expiry
// (expire-reservations), as no order will ever commit it. It runs on a
// context of its own, bounded by clearTimeout, as the saga's deadline may be
// what ended the write, or end it a moment later: a Place that gives a hold
// back past its deadline answers without driving the order, so it spends the
// cart's share of LongestDrive.
func (s *Saga) giveBack(ctx context.Context, orderID uuid.UUID, t tried) {
	if t.err != nil && !fault.Retryable(t.err) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clearTimeout)
	defer cancel()
	if err := s.cfg.Stock.Release(ctx, orderID); err != nil {
		s.cfg.Log.WarnContext(ctx, "release the hold of an order never written", "order_id", orderID, "err", err.Error())
	}
}

// admission is what admit found: either a settled checkout to replay, or the
// priced order to write; and the hold it started for the order, if any.
type admission struct {
	hash    string           // the request's hash (with a key)
	settled *orders.Checkout // the key's settled checkout, to replay
	saga    ordersdb.Saga    // the priced pending order, not written yet
	held    *hold            // reserve-stock's first try, started beside pricing
}

// hold is reserve-stock's first try for an order id chosen before the order
// is priced: wait waits for its answer.
type hold struct {
	orderID uuid.UUID
	lines   []orders.Line // product and quantity of each line, in the request's order
	wait    func() (tried, error)
}

// sameLines reports whether a and b hold the same products and quantities
// in the same order (what reserve-stock is asked for; prices aside).
func sameLines(a, b []orders.Line) bool {
	return slices.EqualFunc(a, b, func(x, y orders.Line) bool { return x.ProductID == y.ProductID && x.Quantity == y.Quantity })
}

// admit decides whether a request may write an order, and prices it. Its
// three reads wait on three other servers — the caller's limit (Redis), the
// key (the orders database) and the prices (get-product through the gateway,
// every line at once) — so they run concurrently, and the answer is the one
// they give in that order: a refused limit first (even for an invalid
// request, which is counted), then the key's (a settled checkout to replay, a
// reused key, one still in progress), then pricing's. Nothing is written but
// the limit's count.
//
// When the limit or the key decides the answer, pricing is cancelled (so a
// replayed request, or the first request the limit refuses in a window, may
// have started get-product calls, at most maxPricing; the caller's later
// requests in that window are refused before anything starts); the limit and the key's first read are never cancelled (a
// cancelled query costs its connection), and they are answered in one round
// trip each. admit returns once every read has stopped. The key is read on
// reqCtx, the client's; the limit and pricing on run, the saga's (a checkout
// goes on when its client hangs up, so it is counted then too).
//
// For a valid request that names its items, admit also starts
// reserve-stock's first try, on run, under a new order id (admission.held),
// beside the three reads: the hold needs the lines, not their prices. Place
// takes it, or gives it back when admit answers without an order to write.
func (s *Saga) admit(reqCtx, run context.Context, who auth.Identity, req orders.PlaceRequest, key string) (admission, error) {
	var a admission
	sagaCtx := run // run becomes pricing's own context below, which may be stopped
	// A caller already refused in this window is refused before anything
	// starts: only its first refused request can have started pricing.
	if s.cfg.Limit != nil {
		if err := s.cfg.Limit.Refused(who.UserID.String()); err != nil {
			return a, err
		}
	}
	limited := async(func() (struct{}, error) {
		if s.cfg.Limit == nil {
			return struct{}{}, nil
		}
		// Counted on the saga's context: a client that hangs up at once
		// still has its checkout made (it runs detached), so it must be
		// counted too, or hanging up would place orders past the limit.
		return struct{}{}, s.cfg.Limit.Allow(sagaCtx, who.UserID.String())
	})
	if err := req.Validate(); err != nil {
		_, lerr := limited()
		return a, cmp.Or(lerr, err)
	}
	if key != "" {
		if err := orders.ValidKey(key); err != nil {
			_, lerr := limited()
			return a, cmp.Or(lerr, err)
		}
		a.hash = req.Hash()
	}
	hash := a.hash
	if req.Items != nil {
		// The lines to hold are the request's (a cart's are known only once
		// read): reserve-stock's first try starts now, on the saga's
		// context, under the id the order will be written with.
		id, err := uuid.NewV7()
		if err != nil {
			_, lerr := limited()
			return a, cmp.Or[error](lerr, fault.Internalf("order id: %w", err))
		}
		lines := make([]orders.Line, len(req.Items))
		for i, it := range req.Items {
			lines[i] = orders.Line{ProductID: it.ProductID, Quantity: it.Quantity}
		}
		a.held = &hold{orderID: id, lines: lines, wait: async(func() (tried, error) {
			return try(sagaCtx, orders.StepReserve, func(ctx context.Context) error { return s.cfg.Stock.Reserve(ctx, id, lines) }), nil
		})}
	}
	checked := async(func() (*orders.Checkout, error) {
		if key == "" {
			return nil, nil
		}
		return s.db.CheckKey(reqCtx, who.UserID, key, hash, 0) // one read: waiting comes below
	})
	run, stopPricing := context.WithCancel(run)
	priced := async(func() (ordersdb.Saga, error) { return s.price(run, who.UserID, req) })
	defer func() {
		stopPricing() // a no-op once priced
		limited()
		checked()
		priced()
	}()
	if _, err := limited(); err != nil {
		return a, err
	}
	var err error
	a.settled, err = checked()
	if errors.Is(err, ordersdb.ErrKeyInProgress) {
		// A request with the key is running: wait for its checkout up to
		// KeyWait, while pricing goes on. Its answer will most likely be
		// replayed, so the hold taken beside pricing is given back now
		// rather than kept for the wait; should the key be free after all,
		// the order is written under a new id and reserved anew (no order
		// is ever written with a hold given back).
		if h := a.held; h != nil {
			t, _ := h.wait()
			s.giveBack(sagaCtx, h.orderID, t)
			a.held = nil
		}
		a.settled, err = s.db.CheckKey(reqCtx, who.UserID, key, a.hash, s.cfg.KeyWait)
	}
	if err != nil || a.settled != nil {
		return a, err
	}
	a.saga, err = priced()
	return a, err
}

// async runs f in a goroutine of its own; the function it returns waits for
// f's result, and may be called any number of times.
func async[T any](f func() (T, error)) func() (T, error) {
	var v T
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		v, err = f()
	}()
	return func() (T, error) {
		<-done
		return v, err
	}
}

func checkout(c *orders.Checkout) orders.Checkout {
	if c == nil {
		return orders.Checkout{}
	}
	return *c
}

// price prices the request — its items, or the caller's cart — and returns
// the pending order's saga, not written yet. Nothing is written: a failure
// here leaves no trace, and the key stays free.
func (s *Saga) price(ctx context.Context, userID uuid.UUID, req orders.PlaceRequest) (ordersdb.Saga, error) {
	items, fromCart := req.Items, false
	if items == nil {
		if s.cfg.Cart == nil {
			return ordersdb.Saga{}, fault.E(fault.Invalid, fault.CodeInvalidRequest, "items are required")
		}
		lines, err := s.cfg.Cart.Lines(ctx, userID)
		if err != nil {
			return ordersdb.Saga{}, err
		}
		if len(lines) == 0 {
			return ordersdb.Saga{}, fault.E(fault.Invalid, fault.CodeCartEmpty, "the cart is empty; add items or send items")
		}
		for _, l := range lines {
			items = append(items, orders.ItemRequest{ProductID: l.ProductID, Quantity: l.Quantity})
		}
		fromCart = true
	}
	if err := orders.ValidateItems(items); err != nil {
		return ordersdb.Saga{}, err
	}
	// A cart's line whose product get-product answers its 404 for
	// (archived or unknown) is skipped, as get-cart leaves it out of the
	// cart it shows (orders.PriceCart); a line the request names is
	// unknown_product. Any other catalog failure fails the checkout.
	prices, err := s.prices(ctx, items, fromCart)
	if err != nil {
		return ordersdb.Saga{}, err
	}
	var lines []orders.Line
	var total orders.Money
	var skipped []uuid.UUID
	if fromCart {
		lines, total, skipped, err = orders.PriceCart(items, prices)
	} else {
		lines, total, err = orders.Price(items, prices)
	}
	if err != nil {
		return ordersdb.Saga{}, err
	}
	o, err := orders.New(userID, lines, total, req.ShippingAddress, time.Now())
	if err != nil {
		return ordersdb.Saga{}, err
	}
	return ordersdb.Saga{Order: o, PaymentToken: req.Payment.Token, FromCart: fromCart, Skipped: skipped}, nil
}

// maxPricing bounds the get-product calls one checkout has in flight.
const maxPricing = 8

// prices asks the catalog for the price of every product of items, up to
// maxPricing at once (each is a get-product call through the gateway), and
// answers as if it had asked line by line: the refusal of the first line, in
// the order of items, that was refused (an unknown or archived product is
// unknown_product). With skipGone (a cart's lines), such a product is no
// refusal: it is left out of the prices, for orders.PriceCart to skip.
func (s *Saga) prices(ctx context.Context, items []orders.ItemRequest, skipGone bool) (map[uuid.UUID]orders.Money, error) {
	got := make([]catalogclient.Product, len(items))
	errs := make([]error, len(items))
	slots := make(chan struct{}, maxPricing)
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			got[i], errs[i] = s.cfg.Catalog.GetProduct(ctx, it.ProductID)
		})
	}
	wg.Wait()
	prices := make(map[uuid.UUID]orders.Money, len(items))
	for i, it := range items {
		switch err := errs[i]; {
		case fault.KindOf(err) == fault.NotFound && skipGone:
			continue
		case fault.KindOf(err) == fault.NotFound:
			return nil, fault.Wrap(err, fault.Invalid, fault.CodeUnknownProduct, "unknown product "+it.ProductID.String())
		case err != nil:
			return nil, err
		}
		prices[it.ProductID] = orders.Money{Amount: got[i].Price.Amount, Currency: got[i].Price.Currency}
	}
	return prices, nil
}

// Drive resumes the saga of an order from its persisted state and returns the
// order as it ends this run: still pending when a service stayed unavailable
// (a later run finishes it). It settles an owed compensation first. Safe to
// call on an order in any status. fault.NotFound when the order does not
// exist.
func (s *Saga) Drive(ctx context.Context, orderID uuid.UUID) (orders.Order, error) {
	return s.driveOn(context.WithoutCancel(ctx), orderID)
}

// driveOn is Drive on ctx as it is, not detached: recoverOne detaches it
// itself and cuts it when its claim is lost (errClaimLost).
func (s *Saga) driveOn(ctx context.Context, orderID uuid.UUID) (orders.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	c, err := s.drive(ctx, orderID, nil, nil)
	return c.Order, err
}

// Cancel cancels a confirmed order for its owner or an admin: the order
// becomes cancelled with order.cancelled.v1 in one transaction
// (orders.Order.Cancel decides, under the row lock), then its stock is
// restocked and its payment refunded (idempotent calls; an owed compensation
// is finished by recover-orders). Anyone else gets fault.NotFound; an order
// that is not confirmed — pending, payment_failed, or already cancelled — is
// fault.Conflict "not_cancellable", so a second cancel never refunds or
// restocks again. A cancellation whose write's answer was lost is read again
// (lookUp) and, when it committed, finished and answered as one that did.
func (s *Saga) Cancel(ctx context.Context, who auth.Identity, orderID uuid.UUID) (orders.Order, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	o, err := s.db.Update(ctx, orderID, func(o *orders.Order) (orders.Change, error) {
		return o.Cancel(who.UserID, who.IsAdmin(), time.Now())
	})
	if err != nil && !ordersdb.NotWritten(err) {
		// The write went out and its answer was lost: it may have committed,
		// and then a retry would be refused not_cancellable. Read the order
		// again, as a confirmation's lost answer is: cancelled by request
		// with its compensation owed, it is this cancellation's or one made
		// at the same moment by the owner or an admin (the caller passed
		// Cancel's checks before the write either way), and what it owes is
		// given back now rather than by recovery (release and refund are
		// idempotent, the settlement conditional).
		if stored, lerr := s.lookUp(ctx, orderID, err); lerr == nil && stored.Order.Status == orders.Cancelled &&
			stored.Order.Reason == orders.ReasonCancelled && stored.Compensation == orders.CompensationOwed {
			s.cfg.Log.WarnContext(ctx, "the answer of the order's cancellation was lost; it was cancelled", "order_id", orderID, "err", err.Error())
			o, err = stored.Order, nil
		}
	}
	if err != nil {
		return orders.Order{}, err
	}
	tl := &timeline{}
	defer s.flush(ctx, orderID, tl)
	s.compensate(ctx, tl, o, releaseAndRefund)
	return o, nil
}

// Report is what one recovery run did.
type Report struct {
	Driven    int `json:"driven"`
	Confirmed int `json:"confirmed"`
	Failed    int `json:"failed"`
	Pending   int `json:"still_pending"`
	// Expired counts the pending orders given up on (GiveUpAfter), which
	// are not in Failed.
	Expired int `json:"expired"`
	// CartRemovals counts the confirmed orders driven for the cart removal
	// their confirmation left owed (they were confirmed already: not in
	// Confirmed); the removal may have failed again (the order's timeline
	// and the log say).
	CartRemovals int `json:"cart_removals"`
	// Compensations counts the orders that had ended already, driven for a
	// release or refund still owed.
	Compensations int `json:"compensations"`
	// TakenOver counts the orders whose claim another run took over while
	// this run drove them (its renewals failed for longer than Lease: see
	// keepClaim): the run cut its drive and left each order as it stood to
	// the run that took it over, which counts how it ends. They are not in
	// Pending (until 2026-12-08 a cut pending order was, and fed
	// OrdersStuckPending) nor in Errors, whatever the cut drive saw.
	TakenOver int `json:"taken_over"`
	// Errors counts the claimed orders whose drive failed: the order could
	// not be read (logged at error level, with the order's id). The run
	// goes on with the others, and the order is claimed again when its
	// lease runs out; recover-orders counts such a run as an error, so an
	// order that can never be driven is seen (RecoveryStalled).
	Errors int   `json:"errors"`
	Purged int64 `json:"purged_keys"`
}

// MinClaimWindow is the least time a request's deadline (exec_timeout) must
// leave beyond LongestDrive: a recovery run claims orders only in that window
// (Recover), and one shorter than a run's own start and first claim would
// claim nothing, run after run (ordersenv refuses it).
const MinClaimWindow = 2 * time.Second

// LongestDrive is the longest a drive of a saga with timeout may take: the
// timeout, then the look-up of an order whose write's answer was lost, the
// cart clear (or, for an order answered pending, the release of its lease:
// never both, and each at most clearTimeout) and the timeline write, on
// contexts of their own after it.
func LongestDrive(timeout time.Duration) time.Duration {
	return timeout + doubtTimeout + clearTimeout + flushTimeout
}

// Recover drives every saga left unfinished — orders pending for longer than
// RecoverAfter, orders still owing a compensation, and confirmed cart orders
// whose lines are still owed out of the cart (Report.CartRemovals) — one lease at a time,
// each claimed once the drive before it has ended, until limit orders were
// driven or its claim window is over, then purges expired idempotency keys in
// the time left (see purge). It claims no order once less than a drive's
// longest time (LongestDrive) is left before ctx's deadline (the function's
// exec timeout), so the run ends before it: a claim made past it would fail,
// and a drive claimed late would outlive the request. The claim window is
// thus the deadline less LongestDrive (at most the saga Timeout): 3 s from the
// request's start at the defaults (exec_timeout 30 s − 27 s), so a run drives
// about min(limit, 3 s ÷ one drive's time) orders. A run whose deadline leaves no
// time to claim at all claims nothing and returns a fault.Unavailable error
// (after its purge), so it counts as a failed run. Concurrent runs split the work
// (ordersdb.Store.ClaimStale); the next run takes what is left.
//
// Each order is driven in a span of its own, "recover order" (a child of
// ctx's span, attribute order.id), linked to the span its checkout wrote the
// order in when that is known (ordersdb.Claim.Checkout): the run's trace
// tells its orders apart, each leads back to its checkout's trace, and
// what a drive writes (timeline entries, the outbox row's traceparent)
// descends from that span.
func (s *Saga) Recover(ctx context.Context, limit int) (Report, error) {
	var rep Report
	budget := time.Now().Add(s.cfg.Timeout)
	drive := LongestDrive(s.cfg.Timeout)
	// noWindow: the deadline left no time to claim even one order. The run
	// then fails (after its purge), so that a recovery that never claims is
	// counted as failing rather than as an empty success.
	var noWindow error
	if d, ok := ctx.Deadline(); ok && d.Add(-drive).Before(budget) {
		budget = d.Add(-drive)
		if !time.Now().Before(budget) && limit > 0 {
			noWindow = fault.Wrap(fmt.Errorf("recovery claims nothing: the run's deadline is %s away, a drive may take %s",
				time.Until(d).Round(time.Millisecond), drive), fault.Unavailable, fault.CodeUnavailable, "recovery had no time to claim an order")
		}
	}
	// driven: the orders this run has claimed, never claimed again by it
	// (their claims, no longer renewed, run out within Lease).
	var driven []uuid.UUID
	for rep.Driven+rep.Errors < limit && time.Now().Before(budget) {
		claims, err := s.db.ClaimStale(ctx, s.cfg.RecoverAfter, s.cfg.Lease, 1, driven)
		if err != nil {
			return rep, err
		}
		if len(claims) == 0 {
			break
		}
		driven = append(driven, claims[0].OrderID)
		o, lost, err := s.recoverOne(ctx, claims[0])
		if err != nil && !lost {
			rep.Errors++
			continue
		}
		rep.Driven++
		// By the status claimed: an order claimed pending is counted by how
		// the drive ended it; one claimed ended, by why it was claimed. A
		// drive cut by the claim's loss counts as that: the run that took
		// the order over counts it again, by how it ends.
		switch {
		case lost:
			rep.TakenOver++
		case claims[0].Status == orders.Confirmed:
			rep.CartRemovals++
		case claims[0].Status != orders.Pending:
			rep.Compensations++
		case o.Status == orders.Confirmed:
			rep.Confirmed++
		case o.Status == orders.Pending:
			rep.Pending++
		case o.Reason == orders.ReasonExpired:
			rep.Expired++
		default:
			rep.Failed++
		}
	}
	var err error
	rep.Purged, err = s.purge(ctx)
	if noWindow != nil {
		return rep, errors.Join(noWindow, err)
	}
	return rep, err
}

// purgeMargin is the time a recovery run keeps, after its purge and before
// its deadline, to answer.
const purgeMargin = time.Second

// purge deletes expired idempotency keys (ordersdb.Store.PurgeKeys, in
// batches) until purgeMargin before ctx's deadline. A purge that this cuts
// short is no failure: its batches are committed, and the next run goes on
// (after recover-orders stopped for a day, the backlog is millions of keys).
// It runs after the drives so that such a backlog never keeps a run from
// driving orders.
func (s *Saga) purge(ctx context.Context) (int64, error) {
	pctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithDeadline(ctx, d.Add(-purgeMargin))
		defer cancel()
	}
	n, err := s.db.PurgeKeys(pctx)
	if err != nil && pctx.Err() != nil && ctx.Err() == nil {
		s.cfg.Log.InfoContext(ctx, "expired keys left for the next run: the run's deadline is near", "purged", n)
		return n, nil
	}
	return n, err
}

// recoverOne drives a claimed order in its "recover order" span (see
// Recover), renewing the claim while it does (keepClaim), and logs a failed
// drive. Once the drive ends the renewals stop, and the claim runs out
// within Lease. The drive runs detached from ctx, as Drive's, but is cut
// when a renewal finds the claim taken over by another run: it stops at its
// next step, leaving the order to that run (claimLost), lost is true, and
// the order is returned as this run last saw it (pending, or as it was
// claimed); an error of a cut drive (its read of the order cut) is the cut's,
// not logged as a failure.
func (s *Saga) recoverOne(ctx context.Context, c ordersdb.Claim) (o orders.Order, lost bool, err error) {
	opts := []trace.SpanStartOption{trace.WithAttributes(attribute.String("order.id", c.OrderID.String()))}
	if c.Checkout.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: c.Checkout}))
	}
	ctx, span := otel.Tracer(tracerScope).Start(ctx, "recover order", opts...)
	defer span.End()
	dctx, lose := context.WithCancelCause(context.WithoutCancel(ctx))
	defer lose(nil)
	kept := s.keepClaim(ctx, c, func() { lose(errClaimLost) })
	o, err = s.driveOn(dctx, c.OrderID)
	lost = claimLost(dctx) // before the renewals stop: a loss found after the drive ended cut nothing
	kept()
	if err != nil && !lost {
		span.SetStatus(codes.Error, "")
		s.cfg.Log.ErrorContext(ctx, "recover order", "order_id", c.OrderID, "err", err.Error())
	}
	return o, lost, err
}

// tracerScope is the instrumentation scope of the saga's own spans.
const tracerScope = "github.com/shopfaas/shop/internal/orders/saga"
