// Package orders is the orders service's domain: what an order is, which
// checkout requests are acceptable, how lines and totals are priced, and the
// state machine every order follows. It does no I/O; ordersdb stores what it
// decides and the saga package drives orders through the other services.
package orders

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/formatchar"
	"github.com/shopfaas/shop/internal/ids"
	"github.com/shopfaas/shop/internal/payments"
)

// Source is the CloudEvents source of every event the orders service emits.
const Source = "shop/orders"

// Limits on a checkout request.
const (
	MaxLines      = 100  // distinct products in one order
	MaxQuantity   = 1000 // units of one product in one order (reserve-stock's limit)
	MaxTokenBytes = 100
	MaxKeyBytes   = 255 // Idempotency-Key length
)

// Status is where an order stands in the saga. It only moves forward:
// pending → confirmed | payment_failed | cancelled, confirmed → cancelled.
type Status string

// The statuses of api/openapi.yaml; no other value is ever stored or exposed.
const (
	Pending       Status = "pending"
	Confirmed     Status = "confirmed"
	PaymentFailed Status = "payment_failed"
	Cancelled     Status = "cancelled"
)

// Reasons explain a terminal status. An order refused for lack of stock ends
// Cancelled with ReasonOutOfStock: it stays within api/openapi.yaml's statuses and is
// distinguishable from a cancellation by its owner.
const (
	ReasonOutOfStock      = "out_of_stock"
	ReasonPaymentDeclined = "payment_declined"
	ReasonCancelled       = "cancelled_by_request"
	ReasonInvalidToken    = "invalid_payment_token"
	ReasonRejected        = "rejected"
	// ReasonExpired ends an order recovery could not finish within its
	// give-up age (saga.Config.GiveUpAfter): payment_failed, whatever was
	// charged refunded.
	ReasonExpired = "expired"
)

// CanMoveTo reports whether the saga may move an order from s to next. A move
// to the same status is not a move (callers treat it as already done).
func (s Status) CanMoveTo(next Status) bool {
	switch s {
	case Pending:
		return next == Confirmed || next == PaymentFailed || next == Cancelled
	case Confirmed:
		return next == Cancelled
	}
	return false
}

// Money is an amount in integer minor units of an ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Address is where an order ships. Every field is required. Its text fields
// hold no invisible character but a joiner where it joins, as a name's
// (formatchar.InName: a Persian street or a Hindi city may need one; until
// 2026-12-08 any passed).
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// PaymentMethod carries the processor's payment token, never a card number.
type PaymentMethod struct {
	Token string `json:"token"`
}

// ItemRequest is one requested line: a product and a quantity, never a price.
type ItemRequest struct {
	ProductID uuid.UUID `json:"product_id"`
	Quantity  int       `json:"quantity"`
}

// PlaceRequest is the body of POST /api/v1/orders. Its fields are the whole
// contract: prices, totals, user ids and statuses are unknown fields and the
// strict decoder refuses them. Items nil means "order my cart": the key left
// out, never "items": null (ItemList).
type PlaceRequest struct {
	Items           ItemList      `json:"items,omitempty"`
	ShippingAddress Address       `json:"shipping_address"`
	Payment         PaymentMethod `json:"payment"`
}

// ItemList is a request's lines. Decoded, it refuses null: a client that
// wrote an empty or missing list as null would otherwise order, and be
// charged for, the whole cart. Its lines are decoded as strictly as the rest
// of the body (unknown fields refused), and a product id only in its
// canonical form (canonicalID), as a path's.
type ItemList []ItemRequest

// ErrNullItems is ItemList's answer to null, a 400 invalid_json.
var ErrNullItems = fault.E(fault.Malformed, fault.CodeInvalidJSON,
	"items must be an array of lines; leave the key out to order the cart")

// itemLine is an ItemRequest as a client writes it: the same fields under
// the same names (TestItemLineIsItemRequestsWireForm), the id read strictly.
type itemLine struct {
	ProductID canonicalID `json:"product_id"`
	Quantity  int         `json:"quantity"`
}

// JSONShape is the type a list decodes its JSON into, whose field names a
// line's keys must match exactly (fnhttp.JSONShaper).
func (ItemList) JSONShape() any { return []itemLine(nil) }

// UnmarshalJSON decodes b, refusing null.
func (l *ItemList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return ErrNullItems
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var lines []itemLine
	if err := dec.Decode(&lines); err != nil {
		return err
	}
	*l = make(ItemList, len(lines))
	for i, x := range lines {
		(*l)[i] = ItemRequest{ProductID: uuid.UUID(x.ProductID), Quantity: x.Quantity}
	}
	return nil
}

// canonicalID is an id that decodes only from a JSON string holding its
// canonical form (ids.CanonicalJSON), as a path's is read (fnhttp.PathID).
type canonicalID uuid.UUID

// errProductID is canonicalID's answer to anything else, a 400 invalid_json
// (a number or an object too: json would name the Go type in its own).
var errProductID = fault.E(fault.Malformed, fault.CodeInvalidJSON,
	"items[].product_id must be a product id, a UUID such as 0192f1e4-7c3a-7b6e-9a51-3c2d1e0f4a5b")

// UnmarshalJSON reads a canonical id from a JSON string without escapes.
func (c *canonicalID) UnmarshalJSON(b []byte) error {
	id, ok := ids.CanonicalJSON(b)
	if !ok {
		return errProductID
	}
	*c = canonicalID(id)
	return nil
}

func invalid(msg string) error { return fault.E(fault.Invalid, fault.CodeInvalidRequest, msg) }

// Validate reports the first problem of r as fault.Invalid (422).
func (r PlaceRequest) Validate() error {
	if r.Items != nil {
		if err := ValidateItems(r.Items); err != nil {
			return err
		}
	}
	a := r.ShippingAddress
	for _, f := range []struct {
		name, v string
		max     int
	}{{"name", a.Name, 200}, {"line1", a.Line1, 200}, {"city", a.City, 100}, {"postal_code", a.PostalCode, 20}} {
		if strings.TrimSpace(f.v) == "" {
			return invalid("shipping_address." + f.name + " is required")
		}
		if !utf8.ValidString(f.v) || utf8.RuneCountInString(f.v) > f.max {
			return invalid(fmt.Sprintf("shipping_address.%s must be at most %d characters", f.name, f.max))
		}
		if r, ok := formatchar.InName(f.v); ok {
			return invalid(formatchar.Problem("shipping_address."+f.name, r))
		}
	}
	if len(a.Country) != 2 || !isUpperAlpha(a.Country) {
		return invalid("shipping_address.country must be an ISO 3166-1 alpha-2 code such as US")
	}
	t := r.Payment.Token
	if !strings.HasPrefix(t, "tok_") || len(t) > MaxTokenBytes || !isTokenChars(t) {
		return invalid("payment.token must be a payment token such as tok_visa (card numbers are never accepted)")
	}
	return nil
}

// ValidateItems checks requested lines: 1..MaxLines distinct products, each
// with a quantity from 1 to MaxQuantity. It applies to a cart as well.
func ValidateItems(items []ItemRequest) error {
	if len(items) == 0 {
		return invalid("items must not be empty")
	}
	if len(items) > MaxLines {
		return invalid(fmt.Sprintf("at most %d distinct products per order", MaxLines))
	}
	seen := make(map[uuid.UUID]bool, len(items))
	for _, it := range items {
		if it.ProductID == uuid.Nil {
			return invalid("items[].product_id is required")
		}
		if it.Quantity < 1 || it.Quantity > MaxQuantity {
			return invalid(fmt.Sprintf("items[].quantity must be from 1 to %d", MaxQuantity))
		}
		if seen[it.ProductID] {
			return invalid("items must not repeat a product; add up the quantities instead")
		}
		seen[it.ProductID] = true
	}
	return nil
}

// Hash is the fingerprint of the canonical request (lines sorted by product),
// used to tell a replay of an Idempotency-Key from a different request.
func (r PlaceRequest) Hash() string {
	c := r
	if r.Items != nil {
		c.Items = slices.Clone(r.Items)
		slices.SortFunc(c.Items, func(a, b ItemRequest) int { return strings.Compare(a.ProductID.String(), b.ProductID.String()) })
	}
	b, _ := json.Marshal(struct {
		Cart bool `json:"cart"`
		PlaceRequest
	}{r.Items == nil, c}) // cannot fail: plain fields only
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ValidKey checks an Idempotency-Key header value: printable ASCII, 1..255 bytes.
func ValidKey(key string) error {
	if key == "" || len(key) > MaxKeyBytes {
		return invalid(fmt.Sprintf("Idempotency-Key must be 1 to %d characters", MaxKeyBytes))
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return invalid("Idempotency-Key must be printable ASCII")
		}
	}
	return nil
}

func isUpperAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func isTokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Line is one priced line of an order. UnitPrice comes from the catalog at
// checkout and never changes afterwards.
type Line struct {
	ProductID uuid.UUID `json:"product_id"`
	Quantity  int       `json:"quantity"`
	UnitPrice Money     `json:"unit_price"`
}

// Price turns requested items into priced lines and their total, using the
// catalog's prices. Every line must have a price in the same currency;
// otherwise, or when the total would overflow or exceed the largest charge
// payments accept (payments.MaxAmount), the result is fault.Invalid
// (invalid_request, naming the limit) and no order is written.
func Price(items []ItemRequest, prices map[uuid.UUID]Money) ([]Line, Money, error) {
	if err := ValidateItems(items); err != nil {
		return nil, Money{}, err
	}
	lines := make([]Line, 0, len(items))
	var total Money
	for _, it := range items {
		p, ok := prices[it.ProductID]
		if !ok {
			return nil, Money{}, fault.E(fault.Invalid, fault.CodeUnknownProduct, "unknown product "+it.ProductID.String())
		}
		if p.Amount < 0 || len(p.Currency) != 3 {
			return nil, Money{}, fault.Internalf("catalog price of %s is invalid: %+v", it.ProductID, p)
		}
		if total.Currency == "" {
			total.Currency = p.Currency
		} else if total.Currency != p.Currency {
			return nil, Money{}, invalid("all products of an order must be priced in the same currency")
		}
		if p.Amount > 0 && int64(it.Quantity) > (math.MaxInt64-total.Amount)/p.Amount {
			return nil, Money{}, invalid("order total is too large")
		}
		total.Amount += p.Amount * int64(it.Quantity)
		lines = append(lines, Line{ProductID: it.ProductID, Quantity: it.Quantity, UnitPrice: p})
	}
	if total.Amount > payments.MaxAmount {
		return nil, Money{}, invalid(fmt.Sprintf("order total %d exceeds the largest payment accepted, %d minor units", total.Amount, payments.MaxAmount))
	}
	return lines, total, nil
}

// PriceCart prices a cart's lines as Price prices requested items, except
// that a line whose product has no price (get-product answered its 404 for
// it: archived or unknown) is skipped, as get-cart leaves such a line out of
// the cart it shows: the order holds the other lines, and its total is
// theirs. skipped names the products of the lines left out, in the cart's
// order. A cart with no line left is fault.Invalid "cart_empty"; one whose
// lines left are priced in more than one currency is get-cart's answer to
// it, cart.Mixed's fault.Conflict "currency_mismatch" naming the products of
// each currency, so the shopper learns which lines to remove (Price's
// invalid_request named none); and every other refusal of Price applies to
// the lines that are left (an order that names its items refuses such a
// product as "unknown_product" instead: Price).
func PriceCart(items []ItemRequest, prices map[uuid.UUID]Money) (lines []Line, total Money, skipped []uuid.UUID, err error) {
	if err := ValidateItems(items); err != nil {
		return nil, Money{}, nil, err
	}
	kept := make([]ItemRequest, 0, len(items))
	for _, it := range items {
		if _, ok := prices[it.ProductID]; ok {
			kept = append(kept, it)
		} else {
			skipped = append(skipped, it.ProductID)
		}
	}
	if len(kept) == 0 {
		return nil, Money{}, skipped, ErrNothingForSale
	}
	currencies := map[string][]uuid.UUID{}
	for _, it := range kept {
		c := prices[it.ProductID].Currency
		currencies[c] = append(currencies[c], it.ProductID)
	}
	if len(currencies) > 1 {
		return nil, Money{}, nil, cart.Mixed("", currencies)
	}
	lines, total, err = Price(kept, prices)
	if err != nil {
		return nil, Money{}, nil, err
	}
	return lines, total, skipped, nil
}

// ErrNothingForSale is PriceCart's answer to a cart that holds lines, none of
// them of a product still for sale: 422 cart_empty, as an empty cart's.
var ErrNothingForSale = fault.E(fault.Invalid, fault.CodeCartEmpty,
	"no product in the cart is for sale any longer; add items or send items")

// Order is an order with its lines. Its status changes only through the
// decisions of lifecycle.go (Confirm, Fail, Cancel), which ordersdb writes.
type Order struct {
	ID              uuid.UUID
	UserID          uuid.UUID
	Status          Status
	Reason          string
	Items           []Line
	Total           Money
	ShippingAddress Address
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// New starts a pending order for userID with a fresh UUIDv7 id.
func New(userID uuid.UUID, lines []Line, total Money, addr Address, now time.Time) (Order, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Order{}, fault.Internalf("order id: %w", err)
	}
	now = now.UTC().Truncate(time.Microsecond) // what timestamptz keeps
	return Order{ID: id, UserID: userID, Status: Pending, Items: lines, Total: total,
		ShippingAddress: addr, CreatedAt: now, UpdatedAt: now}, nil
}

// MoveTo moves the order forward to next with a reason. A move the state
// machine forbids is fault.Conflict "not_cancellable" when next is Cancelled
// and "invalid_transition" otherwise.
func (o *Order) MoveTo(next Status, reason string, now time.Time) error {
	if !o.Status.CanMoveTo(next) {
		code := fault.CodeInvalidTransition
		if next == Cancelled {
			code = fault.CodeNotCancellable
		}
		return fault.E(fault.Conflict, code, fmt.Sprintf("an order that is %s cannot become %s", o.Status, next))
	}
	o.Status, o.Reason, o.UpdatedAt = next, reason, now.UTC().Truncate(time.Microsecond)
	return nil
}

// VisibleTo reports whether the caller may see the order: its owner or an admin.
func (o Order) VisibleTo(userID uuid.UUID, admin bool) bool { return admin || o.UserID == userID }

// View is an order as the API shows it.
type View struct {
	ID              uuid.UUID `json:"id"`
	Status          Status    `json:"status"`
	Reason          string    `json:"reason,omitempty"`
	Items           []Line    `json:"items"`
	Total           Money     `json:"total"`
	ShippingAddress Address   `json:"shipping_address"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// View returns the API representation of o.
func (o Order) View() View {
	items := o.Items
	if items == nil {
		items = []Line{}
	}
	return View{ID: o.ID, Status: o.Status, Reason: o.Reason, Items: items, Total: o.Total,
		ShippingAddress: o.ShippingAddress, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
}

// EventData is the data of order.placed.v1, order.payment_failed.v1 and
// order.cancelled.v1: enough for consumers to count (or un-count) sales and
// notify the buyer without calling back.
type EventData struct {
	OrderID uuid.UUID `json:"order_id"`
	UserID  uuid.UUID `json:"user_id"`
	Status  Status    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
	Items   []Line    `json:"items"`
	Total   Money     `json:"total"`
}

// EventData returns the event payload describing o.
func (o Order) EventData() EventData {
	return EventData{OrderID: o.ID, UserID: o.UserID, Status: o.Status, Reason: o.Reason, Items: o.View().Items, Total: o.Total}
}

// Step is one entry of an order's timeline: a saga step or an event.
type Step struct {
	At      time.Time `json:"at"`
	Step    string    `json:"step"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail"`
	// TraceID is the W3C trace id (32 hex digits) of the request, recovery
	// run or event delivery that wrote the entry — the key to its trace in
	// Jaeger and to its log lines (trace_id) — or "" when none was active.
	TraceID string `json:"trace_id"`
}

// Timeline steps recorded by the saga (the Step of a timeline entry).
const (
	StepCreated       = "order.created"
	StepReserve       = "stock.reserve"
	StepCharge        = "payment.charge"
	StepCommit        = "stock.commit"
	StepRelease       = "stock.release"
	StepRefund        = "payment.refund"
	StepConfirmed     = "order.confirmed"
	StepPaymentFailed = "order.payment_failed"
	StepCancelled     = "order.cancelled"
	StepCart          = "cart.clear"
	// StepRecovery is the entry the last recorded recovery run of a stuck
	// order adds: later runs that leave the order as it is are not recorded
	// (saga.RecordedRecoveries).
	StepRecovery = "order.recovery"
)

// How a timeline step went (the Outcome of a timeline entry).
const (
	StepOK       = "ok"
	StepRefused  = "refused" // the other service said no (out of stock, declined)
	StepError    = "error"   // transient failure; the step will be retried
	StepRecorded = "recorded"
)

// A timeline cursor is the number of an order's entries the pages before
// have answered, "p" and that number in decimal ("p100"): a position within
// the order, the same for every order at the same page, so it says nothing of
// other orders. Until 2026-12-06 it was the last entry's order_events.seq, a
// counter shared by every order: the difference of two cursors told how many
// timeline entries (so, roughly, checkouts) the whole shop wrote in between.
// A cursor of that old form (a bare number) is refused as any cursor not
// written as TimelineCursor writes one. Any position so written is read, one
// no page returned included: past the order's last entry it reads an empty
// page.
const timelineCursorPrefix = "p"

// TimelineCursor is the cursor of the page after the first n entries of an
// order's timeline.
func TimelineCursor(n int64) string {
	return timelineCursorPrefix + strconv.FormatInt(n, 10)
}

// ParseTimelineCursor reads a timeline cursor (TimelineCursor: how many
// entries of the order the previous pages held, a positive number). A bad
// cursor is ErrBadCursor, and so is another spelling of a position than the
// one the timeline writes ("p+5", "p05"), as ParseCursor refuses one of an
// id, and a cursor of the old form, a bare number.
func ParseTimelineCursor(s string) (int64, error) {
	digits, ok := strings.CutPrefix(s, timelineCursorPrefix)
	n, err := strconv.ParseInt(digits, 10, 64)
	if !ok || err != nil || n <= 0 || TimelineCursor(n) != s {
		return 0, ErrBadCursor
	}
	return n, nil
}

// ParseCursor reads a list cursor (the id of the last order of the previous
// page, as the list writes it: ids.Exact, so never the zero id, which the
// store would take for the first page). A cursor not written so is
// ErrBadCursor, not read as the id it resembles. Any id so written is read,
// one the list never returned included (another user's order, ffffffff-…):
// the list stays the caller's own orders, those with a smaller id.
func ParseCursor(s string) (uuid.UUID, error) {
	id, ok := ids.Exact(s)
	if !ok {
		return uuid.Nil, ErrBadCursor
	}
	return id, nil
}

// ErrBadCursor is a cursor not written as the list (or the timeline) writes
// one: 422 with code invalid_cursor, as every list of the API answers one.
var ErrBadCursor = fault.E(fault.Invalid, fault.CodeInvalidCursor, "cursor is not written as this list writes one")
