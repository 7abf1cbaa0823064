// Package payments holds the payment rules of the shop: what a charge request
// must contain, how a payment's status may move, and the Processor interface
// behind which the card processor sits. It does no I/O: paymentsdb stores
// payments, the simulator package is the built-in processor, and Service
// (service.go) coordinates them so the processor is charged at most once per
// order.
package payments

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
)

// MaxAmount is the largest charge accepted, in minor units (one million of a
// two-decimal currency). Anything larger is a defect upstream, not an order.
const MaxAmount = 100_000_000

// Money is an integer amount of minor units in an ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate reports fault.Invalid "invalid_request" unless the amount is from 1
// to MaxAmount and the currency is three upper-case letters.
func (m Money) Validate() error {
	if m.Amount < 1 || m.Amount > MaxAmount {
		return invalid(fmt.Sprintf("amount.amount must be an integer from 1 to %d minor units", MaxAmount))
	}
	if !currencyPattern.MatchString(m.Currency) {
		return invalid("amount.currency must be an ISO 4217 code such as USD")
	}
	return nil
}

// Status is where a payment stands. A payment is stored in its final charge
// status, captured or declined, once the processor answered; it only moves
// forward from there: captured → refunded. Pending (→ captured | declined) is
// only found on rows left by the previous version of Service, which stored
// the payment before calling the processor.
type Status string

// The payment statuses. StatusNone is never stored: it answers a refund of an
// order that was never charged.
const (
	StatusPending  Status = "pending"
	StatusCaptured Status = "captured"
	StatusDeclined Status = "declined"
	StatusRefunded Status = "refunded"
	StatusNone     Status = "none"
)

// Payment is the one payment of an order. It never holds a card token or card
// data: only what the processor answered.
type Payment struct {
	ID          uuid.UUID
	OrderID     uuid.UUID
	UserID      uuid.UUID
	Status      Status
	Amount      Money
	ProviderRef string // the processor's charge reference, empty while pending
	DeclineCode string // the processor's reason when declined
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// View is the JSON shape of a payment, in every answer that carries one.
type View struct {
	ID          uuid.UUID `json:"id"`
	OrderID     uuid.UUID `json:"order_id"`
	Status      Status    `json:"status"`
	Amount      Money     `json:"amount"`
	ProviderRef string    `json:"provider_ref"`
}

// ViewOf returns the JSON shape of p.
func ViewOf(p Payment) View {
	return View{ID: p.ID, OrderID: p.OrderID, Status: p.Status, Amount: p.Amount, ProviderRef: p.ProviderRef}
}

// ChargeRequest is a validated request to charge an order. The amount comes
// from the orders service, which priced the order from the catalog; the token
// goes to the processor and is never stored.
type ChargeRequest struct {
	OrderID uuid.UUID
	UserID  uuid.UUID
	Amount  Money
	Token   string
}

// MaxTokenLength bounds a payment token; processors' tokens are short.
const MaxTokenLength = 255

// Validate reports fault.Invalid "invalid_request" for a missing order or user,
// a bad amount or a missing or oversized token.
func (r ChargeRequest) Validate() error {
	if r.OrderID == uuid.Nil {
		return invalid("order_id is required")
	}
	if r.UserID == uuid.Nil {
		return invalid("user_id is required")
	}
	if err := r.Amount.Validate(); err != nil {
		return err
	}
	if r.Token == "" {
		return invalid("token is required")
	}
	if len(r.Token) > MaxTokenLength {
		return invalid(fmt.Sprintf("token is longer than %d bytes", MaxTokenLength))
	}
	return nil
}

// SameCharge reports fault.Conflict "payment_mismatch" when a repeated charge
// for an order asks for another user or amount than the stored payment: a
// repeat must be the same request.
func (p Payment) SameCharge(r ChargeRequest) error {
	if p.UserID != r.UserID || p.Amount != r.Amount {
		return fault.E(fault.Conflict, fault.CodePaymentMismatch,
			"this order was already charged with another amount or user")
	}
	return nil
}

// Outcome answers a charge request from its stored payment: captured (and
// later refunded) payments are returned, a declined payment is
// fault.PaymentRequired "payment_declined" every time it is asked.
func (p Payment) Outcome() (Payment, error) {
	if p.Status == StatusDeclined {
		return p, ErrDeclined(p.DeclineCode)
	}
	return p, nil
}

// ErrDeclined is the 402 answered for a declined payment.
func ErrDeclined(reason string) error {
	msg := "the card was declined"
	if reason != "" {
		msg += " (" + reason + ")"
	}
	return fault.E(fault.PaymentRequired, fault.CodePaymentDeclined, msg)
}

func invalid(msg string) error { return fault.E(fault.Invalid, fault.CodeInvalidRequest, msg) }

// Processor is the card processor. The built-in simulator implements it for
// development and tests; a real processor (Stripe, Adyen, …) plugs in behind
// the same interface with an adapter that maps its answers onto Result and
// these errors. Every call carries an idempotency key, and the processor must
// honour it: a repeated Charge or Refund with the same key answers the first
// outcome and moves no money again; a Charge under a key that has an outcome
// answers it whatever the token (a retry's token may be spent, or refused,
// while the key's charge stands). The processor's memory of a charge key
// must outlive every retry of the order's charge and refund — the saga's
// recovery window (Stripe keeps keys 24 h): Service asks the processor, not
// its own table, whether an order was charged (see Service.Charge).
//
// Errors: ErrUnavailable (fault.Unavailable, the processor refused or could
// not be reached, nothing happened), ErrTimeout (fault.Timeout, the outcome is
// unknown: ask again under the same key), ErrInvalidToken (fault.Invalid, the
// token is not chargeable and nothing happened).
type Processor interface {
	// Charge captures amount from the card behind token, keeping customer
	// (the order's user) as the charge's metadata. A decline is a Result
	// with OutcomeDeclined, not an error. A key whose charge was captured
	// and has been refunded since, under any key (by Refund, or by hand at
	// the processor's dashboard), answers OutcomeRefunded with the refund's
	// Reference and the charge's Amount and Customer: a retry answered
	// captured would have the order confirmed on money given back
	// (Service.Charge answers it 402). A real processor replays the key's
	// first response, captured (Stripe); its adapter looks the replayed
	// charge up and answers refunded when it was.
	Charge(ctx context.Context, idempotencyKey string, amount Money, token string, customer uuid.UUID) (Result, error)
	// Refund gives back amount of the charge providerRef in full, once per
	// charge whatever the key: a charge already refunded under another key
	// (by hand at the processor's dashboard, say) answers OutcomeRefunded
	// with its first refund's Reference and moves no money, and Service
	// records that as the order's refund. A real processor's adapter maps
	// its refusal (Stripe: charge_already_refunded) onto that answer with
	// the charge's refund it looks up; an error instead would leave the
	// compensation retrying for ever. A key already used for a refund of
	// another charge or amount is refused with fault.Conflict
	// fault.CodeIdempotencyKeyReused and moves no money (Stripe refuses a
	// replayed key with other parameters: idempotency_error); answering the
	// key's first refund would record a refund that never happened.
	Refund(ctx context.Context, idempotencyKey, providerRef string, amount Money) (Result, error)
	// Void makes sure a charge key never captures: when the key has an entry
	// it answers it as Charge would (the charge landed first; refunded when
	// it was refunded since), otherwise it records under
	// the key, durably, a charge that can never capture (OutcomeDeclined,
	// DeclineCode VoidedCode) and answers that; a later Charge under the key
	// answers the voided decline. Refund uses it on an order without a
	// payment row, so a charge still in flight cannot land after the refund
	// decided there was nothing to give back.
	Void(ctx context.Context, idempotencyKey string) (Result, error)
}

// VoidedCode is the decline code of a charge key voided before any charge
// landed under it (Processor.Void).
const VoidedCode = "voided"

// Outcome is what the processor did.
type Outcome string

// Processor outcomes.
const (
	OutcomeCaptured Outcome = "captured"
	OutcomeDeclined Outcome = "declined"
	OutcomeRefunded Outcome = "refunded"
)

// Result is the processor's answer.
type Result struct {
	Outcome Outcome
	// Reference is the processor's id of the charge (for a refund, of the
	// refund).
	Reference string
	// DeclineCode says why a charge was declined, e.g. "insufficient_funds".
	DeclineCode string
	// Amount is what was charged or refunded; zero for a voided key, which
	// never had a charge request.
	Amount Money
	// Customer is the charge's customer metadata (the user id given to
	// Charge); uuid.Nil for a voided key or when the processor kept none.
	Customer uuid.UUID
}

// Processor errors; see Processor.
var (
	ErrUnavailable  = fault.E(fault.Unavailable, fault.CodeProcessorUnavailable, "the payment processor is unavailable; retry later")
	ErrTimeout      = fault.E(fault.Timeout, fault.CodeProcessorUnavailable, "the payment processor did not answer in time; retry later")
	ErrInvalidToken = fault.E(fault.Invalid, fault.CodeInvalidPaymentToken, "the payment token is not valid")
	ErrUnknownKey   = errors.New("payments: the processor has no record of this idempotency key")
)

// ChargeKey and RefundKey are the idempotency keys of an order's charge and
// refund at the processor: one of each per order, ever.
func ChargeKey(orderID uuid.UUID) string { return orderID.String() }

// RefundKey is the idempotency key of an order's refund.
func RefundKey(orderID uuid.UUID) string { return "refund:" + orderID.String() }
