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
// A charge is recorded once the processor answered, in its final status, by
// one statement (Record). A claim is a lease on a payment row, taken to refund
// it (or to settle a row left pending by the previous version of Service):
// whoever holds an unexpired claim is the only one talking to the processor
// about that order. A claim whose lease ran out belongs to an attempt that
// crashed or hung, and may be taken over.
//
// Service calls Record, Finish, Unclaim and Discard on a context its caller
// cannot cancel and that has no deadline: the store bounds each of them
// itself (paymentsdb: postgres.Detached), so a database that stopped
// answering cannot hold the write, or its connection, forever.
type Store interface {
	// Record inserts p in the status res gives it (captured or declined,
	// with res's reference and decline code) unless the order already has a
	// payment, and returns the stored payment either way.
	Record(ctx context.Context, p Payment, res Result) (Payment, error)
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
	// answered that nothing was (or ever will be) charged under its key,
	// or that the key's charge was refunded at its side.
	Discard(ctx context.Context, orderID, claim uuid.UUID) error
	// ByOrder returns the order's payment; fault.NotFound when there is none.
	ByOrder(ctx context.Context, orderID uuid.UUID) (Payment, error)
}

// ServiceConfig tunes Service.
type ServiceConfig struct {
	// ProcessorTimeout bounds one processor call (PAYMENT_PROCESSOR_TIMEOUT,
	// default 10s). A call past it is an unknown outcome: nothing is stored,
	// and the next attempt charges again under the same key, which the
	// processor answers with the first outcome.
	ProcessorTimeout time.Duration
	// Lease is how long an attempt owns a payment row (to refund it, or to
	// settle a pending one) before another may take over. The default,
	// ProcessorTimeout + StoreTimeout + 5s, outlasts what a live attempt
	// holds a claim for (one processor call, then Finish), so only an
	// attempt that crashed or hung is taken over. A shorter Lease (tests)
	// lets a live attempt be taken over; Refund stays correct then, since
	// an attempt whose Finish found its claim gone looks again.
	Lease time.Duration
	// PollInterval is the longest pause between looks at a payment another
	// attempt is working on (default 200ms).
	PollInterval time.Duration
}

// StoreTimeout is the longest the Store takes over a write Service makes on
// a context without deadline (Record, Finish, Unclaim, Discard): paymentsdb
// bounds each with postgres.Detached, whose budget is 10s.
const StoreTimeout = 10 * time.Second

func (c *ServiceConfig) setDefaults() {
	if c.ProcessorTimeout <= 0 {
		c.ProcessorTimeout = 10 * time.Second
	}
	if c.Lease <= c.ProcessorTimeout {
		c.Lease = c.ProcessorTimeout + StoreTimeout + 5*time.Second
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

// errChargeRefunded answers a charge whose key the processor answers
// refunded: by the shop's refund or by hand at the processor (see Charge).
var errChargeRefunded = fault.E(fault.PaymentRequired, fault.CodePaymentDeclined,
	"the order's charge was refunded at the payment processor; it cannot be charged again")

// Charge charges the order once. It calls the processor at once under the
// order's charge key (ChargeKey), which the processor honours: every attempt
// at the order — a retry, a concurrent twin, a retry after a crash — gets the
// first attempt's answer, and money moves once. Then one statement records
// that answer in its final status unless the order has a payment already, and
// answers the stored payment: a charge is one durable commit. The processor
// call and the recording run on a context the caller cannot cancel (the call
// bounded by ProcessorTimeout, the recording by the Store), so a client that
// hangs up leaves nothing unrecorded.
//
// Nothing is stored before the processor answers. An attempt that dies in
// between leaves a charge the processor knows and the payments table does
// not: the next Charge records it (same key, same answer), and Refund finds
// it (Processor.Void) and refunds it. The processor's memory of the key must
// therefore outlive the order's retries (see Processor).
//
// When the processor's answer is another amount or customer than the request
// (an earlier attempt of the order asked for them), its truth is recorded and
// the answer is payment_mismatch. A row left pending by the previous version
// of Service, which stored the payment before calling the processor, is
// settled as that version did: once its lease is free, claimed and finished
// with the processor's answer.
//
// Answers: the captured payment; fault.PaymentRequired
// "payment_declined" for a decline, stored and repeated on every retry;
// fault.Conflict "payment_mismatch" when the order was charged with another
// amount or user; ErrInvalidToken (422, nothing stored); 402
// "payment_declined", nothing stored, when the processor answers that the
// key's charge was refunded since, by the shop's refund or by hand at the
// processor (Processor.Charge; a stored captured row is first
// recorded refunded, and a pending one deleted, asking the processor nothing:
// settleRefunded, whose error is answered if it fails); processor_unavailable as 503 (nothing captured) or 504 (outcome
// unknown, nothing stored, retry).
func (s *Service) Charge(ctx context.Context, req ChargeRequest) (Payment, error) {
	if err := req.Validate(); err != nil {
		return Payment{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Payment{}, fault.Internalf("payment id: %w", err)
	}
	detached := context.WithoutCancel(ctx)
	res, err := s.call(ctx, func(ctx context.Context) (Result, error) {
		return s.proc.Charge(ctx, ChargeKey(req.OrderID), req.Amount, req.Token, req.UserID)
	})
	if errors.Is(err, ErrInvalidToken) {
		return Payment{}, err
	}
	if err == nil && res.Outcome == OutcomeRefunded {
		// Refunded since it was captured, by our refund or by hand at the
		// processor (Processor.Charge): the key can never capture again. A
		// final refusal, as a voided key's decline is: the saga ends the
		// order payment_failed and releases its stock, and no money is
		// held. Nothing is stored (a row is never inserted refunded); the
		// processor repeats the answer to every retry. A row the order
		// already has (captured by an earlier run that stopped before
		// confirming, or pending from the previous version) is brought in
		// line first with that answer (settleRefunded), since the saga's
		// refusal refunds nothing; its error (retryable) is answered
		// instead, so a retry settles the row.
		if err := s.settleRefunded(ctx, req.OrderID, res); err != nil {
			return Payment{}, err
		}
		return Payment{}, errChargeRefunded
	}
	if err == nil && res.Outcome != OutcomeCaptured && res.Outcome != OutcomeDeclined {
		err = fault.Internalf("processor answered charge outcome %q", res.Outcome)
	}
	if err != nil {
		return Payment{}, processorError(err)
	}
	p := Payment{ID: id, OrderID: req.OrderID, UserID: req.UserID, Amount: req.Amount}
	if res.Amount.Amount != 0 { // a voided key has no amount
		p.Amount = res.Amount
	}
	if res.Customer != uuid.Nil {
		p.UserID = res.Customer
	}
	stored, err := s.store.Record(detached, p, res)
	for err == nil && stored.Status == StatusPending {
		if err := stored.SameCharge(req); err != nil {
			return stored, err
		}
		stored, err = s.settlePending(ctx, req.OrderID, res)
		if fault.Is(err, fault.NotFound, "") {
			// Deleted by its own attempt (invalid token) or a refund that
			// voided the key: record the processor's answer.
			stored, err = s.store.Record(detached, p, res)
		}
	}
	if err != nil {
		return stored, err
	}
	if err := stored.SameCharge(req); err != nil {
		return stored, err
	}
	if stored.Status == StatusRefunded {
		// Refunded between the processor's answer (captured) and its
		// recording: a refund raced this retry. The key can never capture
		// again; answered as the processor's own refunded answer is, above.
		return Payment{}, errChargeRefunded
	}
	return stored.Outcome()
}

// settlePending finishes a payment row left pending by the previous version
// of Service with res, the processor's answer under the order's charge key
// (the one the row's own attempt gets or got): it waits while that attempt
// holds the row's lease, then claims the row and records res. The answer is
// the row once it is no longer pending; fault.NotFound when it was deleted.
func (s *Service) settlePending(ctx context.Context, orderID uuid.UUID, res Result) (Payment, error) {
	claim := uuid.New()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, s.cfg.PollInterval) {
		_, ok, err := s.store.Claim(ctx, orderID, StatusPending, claim, s.cfg.Lease)
		if err != nil {
			return Payment{}, err
		}
		if ok {
			return s.store.Finish(context.WithoutCancel(ctx), orderID, claim, res)
		}
		p, err := s.pause(ctx, orderID, wait)
		if err != nil || p.Status != StatusPending {
			return p, err
		}
	}
}

// giveUp drops the claim so a retry may go on at once, and classifies err
// (processorError). A failed release rides along with err, which keeps its
// classification: the answer is the processor call's (the claim's lease
// frees the row in time).
func (s *Service) giveUp(ctx context.Context, p Payment, claim uuid.UUID, err error) error {
	err = processorError(err)
	if uerr := s.store.Unclaim(ctx, p.OrderID, claim); uerr != nil {
		return errors.Join(err, uerr)
	}
	return err
}

// processorError classifies the error of a processor call: anything but a
// processor error means the processor's state is unknown, and so does a
// deadline however the processor's adapter classified it (an Unavailable
// that a deadline cut may have captured: 504, not 503).
func processorError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && fault.KindOf(err) != fault.Timeout {
		return fault.Wrap(err, fault.Timeout, ErrTimeout.Code, ErrTimeout.Message)
	}
	switch fault.KindOf(err) {
	case fault.Unavailable, fault.Timeout, fault.Invalid, fault.Conflict:
		return err
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

// settleRefunded records res, the processor's answer that the order's charge
// was refunded at its side, in the order's payment row: a captured row
// becomes refunded, and a pending one (the previous version's) goes, as
// Refund does with Void's refunded answer. No row, or a refunded or declined
// one, is left as it is. Nothing is asked of the processor: a refund of a
// charge already refunded would be refused by a real processor or, at one
// that takes it (the simulator does), pay the money back twice; and Void of
// the key would change nothing. It waits while another attempt holds the row;
// when ctx ends first, the answer is 503 "in progress".
func (s *Service) settleRefunded(ctx context.Context, orderID uuid.UUID, res Result) error {
	detached := context.WithoutCancel(ctx)
	claim := uuid.New()
	p, err := s.store.ByOrder(ctx, orderID)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, s.cfg.PollInterval) {
		switch {
		case fault.Is(err, fault.NotFound, ""):
			return nil
		case err != nil:
			return err
		case p.Status != StatusCaptured && p.Status != StatusPending:
			return nil
		}
		_, ok, cerr := s.store.Claim(ctx, orderID, p.Status, claim, s.cfg.Lease)
		if cerr != nil {
			return cerr
		}
		switch {
		case ok && p.Status == StatusPending: // its status cannot move from pending to refunded
			return s.store.Discard(detached, orderID, claim)
		case ok:
			// Finish leaves the row captured when another attempt took
			// the claim over meanwhile: look again.
			p, err = s.store.Finish(detached, orderID, claim, res)
		default:
			p, err = s.pause(ctx, orderID, wait)
		}
	}
}

// Refund gives a captured payment back, exactly once: the refund uses the
// order's refund key at the processor and a claim on the row. An order
// without a payment row is asked of the processor with Void (see unrecorded):
// a charge whose recording was lost is recorded and refunded, and any other
// charge key is made never to capture. A pending row (left by the previous
// version) is resolved by Void as well (a charge the processor refunded at
// its side: the row is deleted and answered as unrecorded does). The answer
// is the payment with status "refunded", or unchanged with status "declined"
// when there was nothing to refund, or Status StatusNone when the order was
// never charged. A charge refunded by hand at the processor is not refunded
// again: the processor answers its first refund (Processor.Refund), which is
// recorded as the payment's refund. Errors: processor_unavailable (503/504) when the processor
// could not be asked; retrying is safe. fault.Invalid "invalid_refund" (422)
// when the processor refuses the refund (no captured charge of the row's
// reference and amount): the row stays captured, and a retry is refused
// the same way. fault.Conflict "idempotency_key_reused" (409) when the
// processor holds, under the order's refund key, a refund of another charge
// or amount (Processor.Refund): nothing is refunded, the row stays captured.
func (s *Service) Refund(ctx context.Context, orderID uuid.UUID) (Payment, error) {
	if orderID == uuid.Nil {
		return Payment{}, invalid("order_id is required")
	}
	p, err := s.store.ByOrder(ctx, orderID)
	none := Payment{OrderID: orderID, Status: StatusNone}
	if fault.Is(err, fault.NotFound, "") {
		p, err = s.unrecorded(ctx, orderID)
		if err != nil || p.Status == StatusNone {
			return p, err
		}
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
				// Void, not Lookup: an unknown key must also stay
				// uncharged after this refund, whoever charges it next.
				res, err := s.void(ctx, orderID)
				if err != nil {
					return p, s.giveUp(detached, claimed, claim, err)
				}
				if voided(res) || res.Outcome == OutcomeRefunded {
					// Never charged, and now never will be; or refunded
					// at the processor's side, which the row (whose status
					// cannot move from pending to refunded) would never
					// show: the row goes, and the answer is the row-less
					// case's (unrecorded).
					if err := s.store.Discard(detached, orderID, claim); err != nil {
						return p, err
					}
					if res.Outcome == OutcomeRefunded {
						return refundedAtTheProcessor(orderID, res), nil
					}
					return none, nil
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
				res, err := s.call(ctx, func(ctx context.Context) (Result, error) {
					return s.proc.Refund(ctx, RefundKey(orderID), claimed.ProviderRef, claimed.Amount)
				})
				if err == nil && res.Outcome != OutcomeRefunded {
					err = fault.Internalf("processor answered refund outcome %q", res.Outcome)
				}
				if fault.Is(err, fault.Conflict, fault.CodeIdempotencyKeyReused) {
					err = fault.Wrap(err, fault.Conflict, fault.CodeIdempotencyKeyReused,
						"the payment processor holds a refund of another charge or amount under this order's refund key; nothing was refunded, and the payment stays captured")
				}
				if err != nil {
					return p, s.giveUp(detached, claimed, claim, err)
				}
				// Finish leaves the row captured when another attempt took
				// the claim over meanwhile: look again until the row is
				// refunded (by that attempt, or by this one once the
				// other's lease runs out; the refund key keeps the
				// processor to one refund). Answering the captured row as
				// the refund's success would settle a compensation that
				// the table never records.
				if p, err = s.store.Finish(detached, orderID, claim, res); err != nil {
					return p, err
				}
				continue
			}
		default:
			return p, fault.Internalf("payment %s has unknown status %q", p.ID, p.Status)
		}
		if p, err = s.pause(ctx, orderID, wait); err != nil {
			return p, err
		}
	}
}

// unrecorded answers Refund for an order without a payment row. Either it
// was never charged, or a charge is in flight (the processor called, its
// answer not yet recorded), or its recording was lost (charge-payment died
// between the processor and Record). Void tells them apart and settles the
// race with a charge in flight, at the processor, under the order's key:
//
//   - declined (voided now or before, or a real decline): StatusNone, with no
//     row: the processor refuses the key from now on, so a charge in flight
//     answers the decline and records it;
//   - captured: the charge is recorded as the processor knows it (the user
//     from its customer metadata) and answered, for Refund to refund it; a
//     charge without customer metadata is refused, fault.Invalid
//     "invalid_refund", nothing stored (a row of nobody's, user_id zero,
//     would hide the payment from its owner);
//   - refunded (a charge refunded since it was captured, by hand at the
//     processor: Processor.Void): answered as refunded, without a row (so with no ID;
//     refund-payment leaves the id out of its answer).
func (s *Service) unrecorded(ctx context.Context, orderID uuid.UUID) (Payment, error) {
	none := Payment{OrderID: orderID, Status: StatusNone}
	res, err := s.void(ctx, orderID)
	if err != nil {
		return none, processorError(err)
	}
	switch res.Outcome {
	case OutcomeDeclined:
		return none, nil
	case OutcomeRefunded:
		return refundedAtTheProcessor(orderID, res), nil
	case OutcomeCaptured:
		if res.Customer == uuid.Nil {
			// The processor kept no customer for the charge (a simulator
			// entry older than its customer column, or a processor that
			// keeps none): a row of ours would belong to nobody (user_id
			// zero), and its owner would be answered 404. Refused, nothing
			// stored or refunded: the compensation stays owed until an
			// operator records the payment with its order's user.
			return none, errNoOwner
		}
		id, err := uuid.NewV7()
		if err != nil {
			return none, fault.Internalf("payment id: %w", err)
		}
		return s.store.Record(context.WithoutCancel(ctx), Payment{ID: id, OrderID: orderID, UserID: res.Customer, Amount: res.Amount}, res)
	}
	return none, processorError(fault.Internalf("processor answered void outcome %q", res.Outcome))
}

// errNoOwner refuses the refund of a capture whose recording was lost and
// whose charge carries no customer at the processor (unrecorded).
var errNoOwner = fault.E(fault.Invalid, fault.CodeInvalidRefund,
	"the payment processor holds a capture of this order with no customer, and its payment cannot be recorded "+
		"without the order's user: nothing was refunded; record the payment with the order's user and refund again "+
		"(docs/checkout.md, \"A lost capture without its customer\")")

// refundedAtTheProcessor answers Refund for a charge the processor's Void
// says was refunded at its side, with no row of ours (so with no ID).
func refundedAtTheProcessor(orderID uuid.UUID, res Result) Payment {
	return Payment{OrderID: orderID, UserID: res.Customer, Status: StatusRefunded, Amount: res.Amount,
		ProviderRef: res.Reference}
}

// call runs one processor call on a context the caller cannot cancel,
// bounded by ProcessorTimeout: a client that hangs up never cuts a call whose
// outcome must be recorded.
func (s *Service) call(ctx context.Context, f func(context.Context) (Result, error)) (Result, error) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ProcessorTimeout)
	defer cancel()
	return f(pctx)
}

// void asks the processor to void the order's charge key (Processor.Void).
func (s *Service) void(ctx context.Context, orderID uuid.UUID) (Result, error) {
	return s.call(ctx, func(ctx context.Context) (Result, error) { return s.proc.Void(ctx, ChargeKey(orderID)) })
}

// voided reports whether res is a charge key voided before any charge.
func voided(res Result) bool { return res.Outcome == OutcomeDeclined && res.DeclineCode == VoidedCode }

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
