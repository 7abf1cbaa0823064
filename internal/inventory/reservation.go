package inventory

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
)

// Reservation limits. A hold lives DefaultHoldTTL unless the caller asks for a
// TTL within [MinHoldTTL, MaxHoldTTL]; a line asks for 1..MaxLineQuantity units
// and an order has at most MaxReservationLines lines.
const (
	DefaultHoldTTL      = 15 * time.Minute
	MinHoldTTL          = 30 * time.Second
	MaxHoldTTL          = time.Hour
	MaxLineQuantity     = 1000
	MaxReservationLines = 100
)

// HoldStatus is where an order's reservation stands. It only moves forward:
// held → committed → restocked, held → released, held → expired →
// committed (re-taken) or → released. An expired hold may still be committed
// by re-taking the stock (see CanCommit); a released one is final, and so is
// an expired one once released (its order ended).
type HoldStatus string

// The reservation statuses. StatusNone is never stored: it answers a release
// of an order that never reserved anything, which stores StatusVoid.
const (
	StatusHeld      HoldStatus = "held"      // units are counted in stock.reserved
	StatusCommitted HoldStatus = "committed" // units left on_hand: the order is fulfilled
	StatusReleased  HoldStatus = "released"  // the hold was given back before commit
	StatusExpired   HoldStatus = "expired"   // the sweep gave the hold back after expires_at
	StatusRestocked HoldStatus = "restocked" // a committed order was cancelled: units back on hand
	StatusNone      HoldStatus = "none"      // no reservation exists for the order
	// StatusVoid is a release of an order that had reserved nothing: the
	// order's checkout ended (or its order was never written) while a first
	// reservation try may still be on its way, and this refuses that try
	// when it lands, so it holds no stock for an order that will never be
	// confirmed. Never answered: a release answers StatusNone.
	StatusVoid HoldStatus = "void"
)

// Line is one product of a reservation. It is no wire type: reserve-stock
// decodes its body's lines itself, reading each product id only in its
// canonical form (docs/security.md).
type Line struct {
	ProductID uuid.UUID
	Quantity  int
}

// Hold is the reservation of one order: every line is held, committed or
// given back together, in one transaction.
type Hold struct {
	OrderID   uuid.UUID
	Status    HoldStatus
	ExpiresAt time.Time
	Lines     []Line
}

// HoldRequest is a validated request to reserve stock for an order. Lines are
// sorted by product id so that every transaction locks stock rows in the same
// order and concurrent reservations cannot deadlock.
type HoldRequest struct {
	OrderID uuid.UUID
	Lines   []Line
	TTL     time.Duration
}

// NewHoldRequest validates a reservation request. ttlSeconds 0 means the
// default. Every problem is fault.Invalid "invalid_request" (422): a nil order
// id, no lines, too many lines, a quantity outside 1..MaxLineQuantity, a
// product listed twice, or a TTL outside [MinHoldTTL, MaxHoldTTL].
func NewHoldRequest(orderID uuid.UUID, lines []Line, ttlSeconds int) (HoldRequest, error) {
	if orderID == uuid.Nil {
		return HoldRequest{}, invalid("order_id is required")
	}
	if len(lines) == 0 {
		return HoldRequest{}, invalid("lines must not be empty")
	}
	if len(lines) > MaxReservationLines {
		return HoldRequest{}, invalid(fmt.Sprintf("at most %d lines per reservation", MaxReservationLines))
	}
	ttl := DefaultHoldTTL
	if ttlSeconds != 0 {
		// The seconds are checked before they become a Duration: a huge
		// count would overflow into the range.
		minSeconds, maxSeconds := int(MinHoldTTL/time.Second), int(MaxHoldTTL/time.Second)
		if ttlSeconds < minSeconds || ttlSeconds > maxSeconds {
			return HoldRequest{}, invalid(fmt.Sprintf("ttl_seconds must be from %d to %d", minSeconds, maxSeconds))
		}
		ttl = time.Duration(ttlSeconds) * time.Second
	}
	sorted := slices.Clone(lines)
	SortLines(sorted)
	for i, l := range sorted {
		if l.ProductID == uuid.Nil {
			return HoldRequest{}, invalid("every line needs a product_id")
		}
		if l.Quantity < 1 || l.Quantity > MaxLineQuantity {
			return HoldRequest{}, invalid(fmt.Sprintf("quantity must be from 1 to %d", MaxLineQuantity))
		}
		if i > 0 && sorted[i-1].ProductID == l.ProductID {
			return HoldRequest{}, invalid("product " + l.ProductID.String() + " is listed twice")
		}
	}
	return HoldRequest{OrderID: orderID, Lines: sorted, TTL: ttl}, nil
}

// SortLines orders lines by product id, the lock order of every stock
// transaction.
func SortLines(lines []Line) {
	slices.SortFunc(lines, func(a, b Line) int { return compareIDs(a.ProductID, b.ProductID) })
}

// compareIDs orders ids bytewise, as PostgreSQL orders uuid values.
func compareIDs(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// ReserveAgain decides a repeated reservation for an order that already has
// one: a live hold or a commit is answered with its current state (the call is
// idempotent); a hold that was given back is fault.Conflict
// "reservation_released", because the order must not silently take stock again.
func (h Hold) ReserveAgain() (Hold, error) {
	switch h.Status {
	case StatusHeld, StatusCommitted:
		return h, nil
	case StatusVoid:
		return Hold{OrderID: h.OrderID, Status: StatusNone}, fault.E(fault.Conflict, fault.CodeReservationReleased,
			"this order's checkout ended before its stock was reserved")
	default:
		return h, fault.E(fault.Conflict, fault.CodeReservationReleased,
			"the reservation of this order was already "+string(h.Status))
	}
}

// CanCommit reports how a commit proceeds from h's status: retake is true when
// the hold expired (the sweep gave it back for an order the orders service did
// not know yet, which a live saga may still confirm) and its units must be
// taken again conditionally; done is true when the order is already
// committed. A released hold is final — every release follows the end of its
// order (failed, cancelled, or never written) — so, like a restocked order
// (committed, then cancelled), it is fault.Conflict "reservation_released":
// a late or replayed commit never sells stock for a dead order (until
// 2026-12-07 a released hold was taken again as an expired one is).
func (h Hold) CanCommit() (retake, done bool, err error) {
	switch h.Status {
	case StatusHeld:
		return false, false, nil
	case StatusCommitted:
		return false, true, nil
	case StatusExpired:
		return true, false, nil
	case StatusReleased:
		return false, false, fault.E(fault.Conflict, fault.CodeReservationReleased,
			"the reservation of this order was released: its order ended")
	case StatusVoid:
		return false, false, fault.E(fault.NotFound, fault.CodeNotFound, "no reservation for this order")
	default:
		return false, false, fault.E(fault.Conflict, fault.CodeReservationReleased,
			"the order was cancelled and its stock restocked")
	}
}

// ErrOutOfStock is the conflict answered when a product lacks available units.
func ErrOutOfStock(productID uuid.UUID) error {
	return fault.E(fault.Conflict, fault.CodeOutOfStock, "not enough stock for product "+productID.String())
}

func invalid(msg string) error { return fault.E(fault.Invalid, fault.CodeInvalidRequest, msg) }

// OrderStatus is an order's status as the orders service answers it
// (order-statuses): what the settlement of the order's hold depends on.
type OrderStatus string

// The order statuses the settlement knows (internal/orders' statuses).
const (
	OrderPending       OrderStatus = "pending"
	OrderConfirmed     OrderStatus = "confirmed"
	OrderPaymentFailed OrderStatus = "payment_failed"
	OrderCancelled     OrderStatus = "cancelled"
)

// Outcome is what the settlement does with a held hold.
type Outcome int

// The settlement outcomes.
const (
	Keep    Outcome = iota // the hold stays held
	Sell                   // held units become sold ones: status committed
	Release                // the units go back to available: status released
	Expire                 // the units go back to available: status expired
)

// Settle decides what becomes of a held hold from its order's status: known
// is false when the orders service does not know the order, pastExpiry true
// once the hold's expires_at has passed.
//
// Only a confirmed order's hold is sold. A failed or cancelled order's hold is
// given back: a cancellation normally released it already, and a cancelled
// order is never sold even if it was confirmed first. A pending order's hold
// stays held as long as the order is pending (recover-orders finishes the
// order, which may still be confirmed). An order the orders service does not
// know may not be written yet (reserve-stock can run before the pending order
// is written), so its hold is given back only past its expiry. Any other
// status is kept: stock stays reserved rather than sold or given back wrongly.
func Settle(status OrderStatus, known, pastExpiry bool) Outcome {
	if !known {
		if pastExpiry {
			return Expire
		}
		return Keep
	}
	switch status {
	case OrderConfirmed:
		return Sell
	case OrderPaymentFailed, OrderCancelled:
		return Release
	}
	return Keep
}

// Settlement is what one settlement batch did (inventorydb.Store.Settle).
type Settlement struct {
	// Scanned is how many holds due for settlement the batch looked up.
	Scanned int
	// Settled, Released and Expired count the holds sold, given back for a
	// failed or cancelled order, and given back past their expiry for an
	// order the orders service does not know.
	Settled, Released, Expired int
	// Next is where the next batch starts: after the last hold scanned.
	Next SettleCursor
}

// SettleCursor is a position in the due holds, ordered by creation then
// order id; the zero value is the start.
type SettleCursor struct {
	CreatedAt time.Time
	OrderID   uuid.UUID
}
