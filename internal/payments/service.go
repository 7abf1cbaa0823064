package payments

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
)

// Store keeps the payments. paymentsdb implements it on PostgreSQL.
//
// A claim is a lease on a payment row: whoever holds an unexpired claim is the
// only one talking to the processor about that order. A claim whose lease ran
// out belongs to an attempt that crashed or hung, and may be taken over.
type Store interface {
	// CreatePending inserts p as pending, claimed by claim for lease, unless
	// the order already has a payment; created reports which happened and the
	// stored payment is returned either way.
	CreatePending(ctx context.Context, p Payment, claim uuid.UUID, lease time.Duration) (stored Payment, created bool, err error)
	// Claim takes the order's payment for claim when it is in status from and
	// nobody holds an unexpired claim; ok is false otherwise.
	Claim(ctx context.Context, orderID uuid.UUID, from Status, claim uuid.UUID, lease time.Duration) (p Payment, ok bool, err error)
	// Finish records the processor's result on a payment held by claim and
	// drops the claim. When claim no longer holds it (another attempt took
	// over and finished), the stored payment is returned unchanged.
	Finish(ctx context.Context, orderID, claim uuid.UUID, res Result) (Payment, error)
	// Unclaim drops claim without changing the status.
	Unclaim(ctx context.Context, orderID, claim uuid.UUID) error
	// Discard deletes a pending payment held by claim: the processor
	// answered that nothing was (or ever will be) charged under its key.
	Discard(ctx context.Context, orderID, claim uuid.UUID) error
	// ByOrder returns the order's payment; fault.NotFound when there is none.
	ByOrder(ctx context.Context, orderID uuid.UUID) (Payment, error)
}

// ServiceConfig tunes Service.
type ServiceConfig struct {
	// ProcessorTimeout bounds one processor call (PAYMENT_PROCESSOR_TIMEOUT,
	// default 10s). A call past it is an unknown outcome: the payment stays
	// pending and the next attempt asks the processor what happened.
	ProcessorTimeout time.Duration
	// Lease is how long an attempt owns a pending payment before another may
	// take over; default ProcessorTimeout + 5s, so a live attempt is never
	// taken over.
	Lease time.Duration
	// PollInterval is the longest pause between looks at a payment another
	// attempt is working on (default 200ms).
	PollInterval time.Duration
}

func (c *ServiceConfig) setDefaults() {
	if c.ProcessorTimeout <= 0 {
		c.ProcessorTimeout = 10 * time.Second
	}
	if c.Lease <= c.ProcessorTimeout {
		c.Lease = c.ProcessorTimeout + 5*time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 200 * time.Millisecond
	}
}

// Service charges and refunds orders through a Processor so that each order is
// charged at most once and refunded at most once, whatever the retries,
// concurrent twins and crashes. It does no I/O of its own: it coordinates the
// Store and the Processor it is given.
type Service struct {
	store Store
	proc  Processor
	cfg   ServiceConfig
}

// NewService returns a service over store and proc.
func NewService(store Store, proc Processor, cfg ServiceConfig) *Service {
	cfg.setDefaults()
	return &Service{store: store, proc: proc, cfg: cfg}
}

var errInProgress = fault.E(fault.Unavailable, fault.CodeProcessorUnavailable,
	"a payment for this order is in progress; retry later")

// Charge charges the order once. The payment row is inserted pending first
// (the order id is unique), so only the attempt that inserted it, or that
// takes over a crashed attempt's expired lease, calls the processor; a twin
// waits for its outcome and answers the same. A taken-over attempt first asks
// the processor (Lookup by the order's key) and charges only if the processor
// never saw the key.
//
// Answers: the captured (or since refunded) payment; fault.PaymentRequired
// "payment_declined" for a decline, stored and repeated on every retry;
// fault.Conflict "payment_mismatch" when the order was charged with another
// amount or user; ErrInvalidToken (422, nothing stored); processor_unavailable
// as 503 (nothing captured) or 504 (outcome unknown, payment stays pending,
// retry).
func (s *Service) Charge(ctx context.Context, req ChargeRequest) (Payment, error) {
	if err := req.Validate(); err != nil {
		return Payment{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Payment{}, fault.Internalf("payment id: %w", err)
	}
	claim := uuid.New()
	for {
		p, created, err := s.store.CreatePending(ctx,
			Payment{ID: id, OrderID: req.OrderID, UserID: req.UserID, Status: StatusPending, Amount: req.Amount},
			claim, s.cfg.Lease)
		if err != nil {
			return Payment{}, err
		}
		if created {
			return s.chargeClaimed(ctx, p, claim, req.Token, false)
		}
		if err := p.SameCharge(req); err != nil {
			return p, err
		}
		for wait := 10 * time.Millisecond; ; wait = min(2*wait, s.cfg.PollInterval) {
			if p.Status != StatusPending {
				return p.Outcome()
			}
			claimed, ok, err := s.store.Claim(ctx, req.OrderID, StatusPending, claim, s.cfg.Lease)
			if err != nil {
				return p, err
			}
			if ok {
				return s.chargeClaimed(ctx, claimed, claim, req.Token, true)
			}
			p, err = s.pause(ctx, req.OrderID, wait)
			if fault.Is(err, fault.NotFound, "") {
				break // the other attempt discarded it (invalid token): start over
			}
			if err != nil {
				return p, err
			}
		}
	}
}

// chargeClaimed talks to the processor for a payment held by claim. The call
// and the recording of its result run on a context the caller cannot cancel
// (bounded by ProcessorTimeout), so a client that hangs up does not leave a
// charge unrecorded.
func (s *Service) chargeClaimed(ctx context.Context, p Payment, claim uuid.UUID, token string, lookupFirst bool) (Payment, error) {
	detached := context.WithoutCancel(ctx)
	pctx, cancel := context.WithTimeout(detached, s.cfg.ProcessorTimeout)
	defer cancel()
	key := ChargeKey(p.OrderID)
	if lookupFirst {
		res, err := s.proc.Lookup(pctx, key)
		switch {
		case err == nil:
			return s.finish(detached, p, claim, res)
		case !errors.Is(err, ErrUnknownKey):
			return p, s.giveUp(detached, p, claim, err)
		}
	}
	res, err := s.proc.Charge(pctx, key, p.Amount, token)
	if errors.Is(err, ErrInvalidToken) {
		if derr := s.store.Discard(detached, p.OrderID, claim); derr != nil {
			return p, derr
		}
		return p, err
	}
	if err != nil {
		return p, s.giveUp(detached, p, claim, err)
	}
	return s.finish(detached, p, claim, res)
}

func (s *Service) finish(ctx context.Context, p Payment, claim uuid.UUID, res Result) (Payment, error) {
	if res.Outcome != OutcomeCaptured && res.Outcome != OutcomeDeclined && res.Outcome != OutcomeRefunded {
		return p, s.giveUp(ctx, p, claim, fault.Internalf("processor answered outcome %q", res.Outcome))
	}
	stored, err := s.store.Finish(ctx, p.OrderID, claim, res)
	if err != nil {
		return p, err
	}
	return stored.Outcome()
}

// giveUp drops the claim so a retry may go on at once, and classifies err:
// anything but a processor error means the processor's state is unknown.
func (s *Service) giveUp(ctx context.Context, p Payment, claim uuid.UUID, err error) error {
	if uerr := s.store.Unclaim(ctx, p.OrderID, claim); uerr != nil {
		return errors.Join(err, uerr)
	}
	switch fault.KindOf(err) {
	case fault.Unavailable, fault.Timeout, fault.Invalid, fault.Conflict:
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fault.Wrap(err, fault.Timeout, ErrTimeout.Code, ErrTimeout.Message)
	}
	return fault.Wrap(err, fault.Unavailable, ErrUnavailable.Code, ErrUnavailable.Message)
}

// pause waits, then reloads the order's payment.
func (s *Service) pause(ctx context.Context, orderID uuid.UUID, d time.Duration) (Payment, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return Payment{}, fault.Wrap(ctx.Err(), errInProgress.Kind, errInProgress.Code, errInProgress.Message)
	case <-t.C:
	}
	return s.store.ByOrder(ctx, orderID)
}

// Refund gives a captured payment back, exactly once: the refund uses the
// order's refund key at the processor and a claim on the row, like Charge. A
// pending payment is first resolved by asking the processor. The answer is the
// payment with status "refunded", or unchanged with status "declined" when
// there was nothing to refund, or Status StatusNone when the order was never
// charged. Errors: processor_unavailable (503/504) when the processor could not
// be asked; retrying is safe.
func (s *Service) Refund(ctx context.Context, orderID uuid.UUID) (Payment, error) {
	if orderID == uuid.Nil {
		return Payment{}, invalid("order_id is required")
	}
	p, err := s.store.ByOrder(ctx, orderID)
	none := Payment{OrderID: orderID, Status: StatusNone}
	if fault.Is(err, fault.NotFound, "") {
		return none, nil
	}
	if err != nil {
		return p, err
	}
	claim := uuid.New()
	detached := context.WithoutCancel(ctx)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, s.cfg.PollInterval) {
		switch p.Status {
		case StatusRefunded, StatusDeclined:
			return p, nil
		case StatusPending:
			claimed, ok, err := s.store.Claim(ctx, orderID, StatusPending, claim, s.cfg.Lease)
			if err != nil {
				return p, err
			}
			if ok {
				pctx, cancel := context.WithTimeout(detached, s.cfg.ProcessorTimeout)
				res, err := s.proc.Lookup(pctx, ChargeKey(orderID))
				cancel()
				switch {
				case errors.Is(err, ErrUnknownKey):
					// Never charged, and we hold the claim: nobody will.
					if err := s.store.Discard(detached, orderID, claim); err != nil {
						return p, err
					}
					return none, nil
				case err != nil:
					return p, s.giveUp(detached, claimed, claim, err)
				}
				if p, err = s.store.Finish(detached, orderID, claim, res); err != nil {
					return p, err
				}
				continue
			}
		case StatusCaptured:
			claimed, ok, err := s.store.Claim(ctx, orderID, StatusCaptured, claim, s.cfg.Lease)
			if err != nil {
				return p, err
			}
			if ok {
				pctx, cancel := context.WithTimeout(detached, s.cfg.ProcessorTimeout)
				res, err := s.proc.Refund(pctx, RefundKey(orderID), claimed.ProviderRef, claimed.Amount)
				cancel()
				if err == nil && res.Outcome != OutcomeRefunded {
					err = fault.Internalf("processor answered refund outcome %q", res.Outcome)
				}
				if err != nil {
					return p, s.giveUp(detached, claimed, claim, err)
				}
				return s.store.Finish(detached, orderID, claim, res)
			}
		default:
			return p, fault.Internalf("payment %s has unknown status %q", p.ID, p.Status)
		}
		if p, err = s.pause(ctx, orderID, wait); err != nil {
			return p, err
		}
	}
}

// Get returns the order's payment for a reader: the owner or an admin. Anyone
// else, like a missing payment, is fault.NotFound, so existence never leaks.
func (s *Service) Get(ctx context.Context, orderID, reader uuid.UUID, admin bool) (Payment, error) {
	p, err := s.store.ByOrder(ctx, orderID)
	if err != nil {
		return Payment{}, err
	}
	if !admin && p.UserID != reader {
		return Payment{}, fault.E(fault.NotFound, fault.CodeNotFound, "no payment for this order")
	}
	return p, nil
}
