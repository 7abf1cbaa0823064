// Package simulator is the built-in card processor of development and tests:
// a payments.Processor that follows the card processor test-token convention
// of docs/checkout.md (tok_visa and tok_mastercard are captured, tok_chargeDeclined and
// tok_chargeDeclinedInsufficientFunds are declined, any other token is refused
// as invalid), honours idempotency keys like a real processor, and injects
// latency, outages and hangs on demand.
//
// Its records live in a Ledger (paymentsdb.SimLedger keeps them in the
// payments database's processor_sim_entries table), so a charge survives a
// crash of the process that asked for it, exactly as it would at a real
// processor. A real processor replaces the simulator behind the same
// payments.Processor interface; nothing else changes.
package simulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mathrand "math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/payments"
)

// Test tokens of the card processor convention.
const (
	TokenVisa                  = "tok_visa"
	TokenMastercard            = "tok_mastercard"
	TokenDeclined              = "tok_chargeDeclined"
	TokenDeclinedInsufficiency = "tok_chargeDeclinedInsufficientFunds"
)

// Entry is one record of the simulated processor: a charge or a refund under
// an idempotency key.
type Entry struct {
	Key         string
	Kind        string // "charge" or "refund"
	Outcome     payments.Outcome
	Reference   string // ch_sim_… or re_sim_…
	DeclineCode string
	ChargeRef   string         // for a refund, the charge it gives back
	Amount      payments.Money // zero for a voided key
	Customer    string         // a charge's customer metadata: the user id, or empty
	// RefundRef is, for a charge, the reference of its refund when it has
	// one (under any key): read with the entry, never written.
	RefundRef string
}

// Ledger keeps the simulator's records durably.
type Ledger interface {
	// Record stores e unless its key is already recorded, or, for a refund,
	// unless its charge (ChargeRef) has a refund already, and returns the
	// entry stored under the key, else the charge's refund, either way (the
	// first one wins): a charge has one refund, whatever the keys, also when
	// refunds under different keys race.
	Record(ctx context.Context, e Entry) (Entry, error)
	// Find returns the entry of key; found is false when there is none.
	Find(ctx context.Context, key string) (e Entry, found bool, err error)
	// FindReference returns the entry whose Reference is ref. Every entry
	// the Ledger answers carries its RefundRef.
	FindReference(ctx context.Context, ref string) (e Entry, found bool, err error)
	// Void is Record, durably: whichever entry it answers, the one stored
	// under the key or e, is durable when it returns.
	Void(ctx context.Context, e Entry) (Entry, error)
}

// Config injects faults. The zero value is a fast, reliable processor.
type Config struct {
	// Latency is added to every call (PAYMENT_SIM_LATENCY, e.g. 200ms).
	Latency time.Duration
	// FailureRate is the share of calls, 0..1, refused as unavailable before
	// anything happens (PAYMENT_SIM_FAILURE_RATE).
	FailureRate float64
	// TimeoutRate is the share of calls, 0..1, that do their work and then
	// hang until the caller's deadline, so the caller never learns the
	// outcome (PAYMENT_SIM_TIMEOUT_RATE). The next Charge or Void under the
	// same key answers it.
	TimeoutRate float64
}

// Validate reports rates outside 0..1 and a negative latency.
func (c Config) Validate() error {
	if c.Latency < 0 || c.FailureRate < 0 || c.FailureRate > 1 || c.TimeoutRate < 0 || c.TimeoutRate > 1 {
		return fmt.Errorf("payment simulator: latency must be >= 0 and rates from 0 to 1")
	}
	return nil
}

// ConfigFrom reads PAYMENT_SIM_LATENCY, PAYMENT_SIM_FAILURE_RATE and
// PAYMENT_SIM_TIMEOUT_RATE from c; c collects the problems.
func ConfigFrom(c *config.Reader) (Config, error) {
	cfg := Config{Latency: c.Duration("PAYMENT_SIM_LATENCY", 0)}
	var err error
	if cfg.FailureRate, err = rate(c.String("PAYMENT_SIM_FAILURE_RATE", "0")); err != nil {
		return cfg, fmt.Errorf("PAYMENT_SIM_FAILURE_RATE: %w", err)
	}
	if cfg.TimeoutRate, err = rate(c.String("PAYMENT_SIM_TIMEOUT_RATE", "0")); err != nil {
		return cfg, fmt.Errorf("PAYMENT_SIM_TIMEOUT_RATE: %w", err)
	}
	return cfg, cfg.Validate()
}

func rate(raw string) (float64, error) {
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		return 0, fmt.Errorf("%q must be a number from 0 to 1", raw)
	}
	return f, nil
}

// Simulator is the simulated processor. It is safe for concurrent use.
type Simulator struct {
	ledger Ledger
	cfg    Config
	mu     sync.Mutex
	rnd    *mathrand.Rand
}

var _ payments.Processor = (*Simulator)(nil)

// New returns a simulator keeping its records in ledger.
func New(ledger Ledger, cfg Config) *Simulator {
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	src := mathrand.NewPCG(uint64FromBytes(seed[:8]), uint64FromBytes(seed[8:]))
	return &Simulator{ledger: ledger, cfg: cfg, rnd: mathrand.New(src)}
}

func uint64FromBytes(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Charge captures or declines by token, once per idempotency key: a repeated
// key answers the recorded result whatever the token. A known token goes
// straight to the ledger's Record, which answers the entry already stored
// under the key when there is one (one ledger call for a new charge, not a
// look-up first); an unknown token looks the key up and is refused only when
// the key was never recorded. A voided key (Void) answers its decline; a key
// whose charge was refunded since answers that refund (answer).
func (s *Simulator) Charge(ctx context.Context, key string, amount payments.Money, token string, customer uuid.UUID) (payments.Result, error) {
	hang, err := s.enter(ctx)
	if err != nil {
		return payments.Result{}, err
	}
	e := Entry{Key: key, Kind: "charge", Amount: amount, Reference: "ch_sim_" + randomHex()}
	if customer != uuid.Nil {
		e.Customer = customer.String()
	}
	switch token {
	case TokenVisa, TokenMastercard:
		e.Outcome = payments.OutcomeCaptured
	case TokenDeclined:
		e.Outcome, e.DeclineCode = payments.OutcomeDeclined, "card_declined"
	case TokenDeclinedInsufficiency:
		e.Outcome, e.DeclineCode = payments.OutcomeDeclined, "insufficient_funds"
	}
	var found bool
	if e.Outcome != "" {
		e, err = s.ledger.Record(ctx, e)
		found = err == nil
	} else {
		e, found, err = s.ledger.Find(ctx, key)
	}
	if err != nil {
		return payments.Result{}, s.down(ctx, err)
	}
	if !found {
		return payments.Result{}, payments.ErrInvalidToken
	}
	if e.Kind != "charge" {
		return payments.Result{}, errKeyUsedForRefund
	}
	return s.leave(ctx, hang, answer(e))
}

// Refund gives back a captured charge in full, once per idempotency key and
// once per charge: a charge already refunded under another key (by hand at
// the processor, say) answers its first refund, reference included, and
// moves no money again (payments.Processor.Refund). Refunding an unknown or
// declined charge, or another amount, is refused as fault.Invalid. A key
// used before for another charge or amount (or for a charge) is refused as
// fault.Conflict "idempotency_key_reused" and moves no money.
func (s *Simulator) Refund(ctx context.Context, key, chargeRef string, amount payments.Money) (payments.Result, error) {
	hang, err := s.enter(ctx)
	if err != nil {
		return payments.Result{}, err
	}
	e, found, err := s.ledger.Find(ctx, key)
	if err != nil {
		return payments.Result{}, s.down(ctx, err)
	}
	if !found {
		charge, ok, err := s.ledger.FindReference(ctx, chargeRef)
		if err != nil {
			return payments.Result{}, s.down(ctx, err)
		}
		if !ok || charge.Kind != "charge" || charge.Outcome != payments.OutcomeCaptured || charge.Amount != amount {
			return payments.Result{}, fault.E(fault.Invalid, fault.CodeInvalidRefund, "no captured charge of that amount to refund")
		}
		e = Entry{Key: key, Kind: "refund", Outcome: payments.OutcomeRefunded, Reference: "re_sim_" + randomHex(),
			ChargeRef: chargeRef, Amount: amount}
		if e, err = s.ledger.Record(ctx, e); err != nil {
			return payments.Result{}, s.down(ctx, err)
		}
	}
	if e.Kind != "refund" || e.ChargeRef != chargeRef || e.Amount != amount {
		// The key's refund (found, or recorded by a twin that raced this
		// one) gives back another charge or amount: answering it would
		// report a refund of this charge that never happened.
		return payments.Result{}, errKeyReused
	}
	return s.leave(ctx, hang, result(e))
}

// errKeyReused refuses a refund key recorded with another charge or amount,
// as a real processor refuses a key replayed with other parameters (Stripe:
// idempotency_error, 400). Nothing is refunded.
var errKeyReused = fault.E(fault.Conflict, fault.CodeIdempotencyKeyReused,
	"the idempotency key was used for another charge or amount")

// errKeyUsedForRefund refuses a charge, or a look at one, under a key the
// simulator recorded for a refund. Nothing moves.
var errKeyUsedForRefund = fault.E(fault.Conflict, fault.CodeIdempotencyKeyReused, "the key was used for a refund")

// Lookup answers the recorded result of key, payments.ErrUnknownKey when the
// simulator never recorded it.
func (s *Simulator) Lookup(ctx context.Context, key string) (payments.Result, error) {
	hang, err := s.enter(ctx)
	if err != nil {
		return payments.Result{}, err
	}
	e, found, err := s.ledger.Find(ctx, key)
	if err != nil {
		return payments.Result{}, s.down(ctx, err)
	}
	if !found {
		return payments.Result{}, payments.ErrUnknownKey
	}
	return s.leave(ctx, hang, result(e))
}

// Void answers the entry of key when there is one; otherwise it records under
// key a charge that never captures (declined, payments.VoidedCode), so a
// later Charge under the key answers that decline. A key whose charge was
// refunded since answers that refund (answer). Unlike Charge's records,
// its answer is durable (Ledger.Void): it is the rare path of a refund that
// decides from it that nothing was charged.
func (s *Simulator) Void(ctx context.Context, key string) (payments.Result, error) {
	hang, err := s.enter(ctx)
	if err != nil {
		return payments.Result{}, err
	}
	e, err := s.ledger.Void(ctx, Entry{Key: key, Kind: "charge", Outcome: payments.OutcomeDeclined,
		DeclineCode: payments.VoidedCode, Reference: "ch_sim_" + randomHex()})
	if err != nil {
		return payments.Result{}, s.down(ctx, err)
	}
	if e.Kind != "charge" {
		return payments.Result{}, errKeyUsedForRefund
	}
	return s.leave(ctx, hang, answer(e))
}

// enter applies latency and the failure rate, and decides whether this call
// will hang after doing its work.
func (s *Simulator) enter(ctx context.Context) (hang bool, err error) {
	if s.cfg.Latency > 0 {
		t := time.NewTimer(s.cfg.Latency)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false, fault.Wrap(ctx.Err(), fault.Timeout, payments.ErrTimeout.Code, payments.ErrTimeout.Message)
		case <-t.C:
		}
	}
	s.mu.Lock()
	fail, hang := s.rnd.Float64() < s.cfg.FailureRate, s.rnd.Float64() < s.cfg.TimeoutRate
	s.mu.Unlock()
	if fail {
		return false, payments.ErrUnavailable
	}
	return hang, nil
}

// leave answers r, or hangs until the caller gives up when the call was
// chosen to time out.
func (s *Simulator) leave(ctx context.Context, hang bool, r payments.Result) (payments.Result, error) {
	if !hang {
		return r, nil
	}
	<-ctx.Done()
	return payments.Result{}, fault.Wrap(ctx.Err(), fault.Timeout, payments.ErrTimeout.Code, payments.ErrTimeout.Message)
}

// down reports a ledger failure as the processor being unavailable, or, when
// the caller's deadline cut it, as a timeout: a write cut mid-flight may have
// committed (a charge captured), and 503 would tell the caller that nothing
// was captured.
func (s *Simulator) down(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fault.Wrap(err, fault.Timeout, payments.ErrTimeout.Code, payments.ErrTimeout.Message)
	}
	return fault.Wrap(err, fault.Unavailable, payments.ErrUnavailable.Code, payments.ErrUnavailable.Message)
}

// answer is what Charge and Void answer about the charge entry e: its
// result, or, when the charge was captured and has been refunded since
// (under any key: by the shop, or by hand at the processor),
// payments.OutcomeRefunded with the refund's reference and the charge's
// amount and customer (payments.Processor.Charge). A real processor replays
// the key's first response, captured (Stripe: the charge's creation,
// Idempotent-Replayed); its adapter answers as this one does by looking the
// replayed charge up (Stripe: refunded). Answered captured, a charge whose
// recording was lost and that was refunded by hand would be recorded
// captured, and its order confirmed on money given back.
func answer(e Entry) payments.Result {
	r := result(e)
	if e.Kind == "charge" && e.Outcome == payments.OutcomeCaptured && e.RefundRef != "" {
		r.Outcome, r.Reference = payments.OutcomeRefunded, e.RefundRef
	}
	return r
}

func result(e Entry) payments.Result {
	r := payments.Result{Outcome: e.Outcome, Reference: e.Reference, DeclineCode: e.DeclineCode, Amount: e.Amount}
	if c, err := uuid.Parse(e.Customer); err == nil {
		r.Customer = c // an entry without a customer (voided, or older than the column) has none
	}
	return r
}

func randomHex() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
