// Package inventory holds the stock rules of the shop: how much of a product
// is on hand, how much of it is reserved by orders in flight, and what an
// administrator may set. It does no I/O; inventorydb stores what it decides.
package inventory

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/jsonint"
)

// MaxOnHand is the largest stock level an administrator may set. Anything
// larger is a typing mistake, not a warehouse.
const MaxOnHand = 1_000_000

// Source is the CloudEvents source of the events the inventory service emits.
const Source = "shop/inventory"

// Stock is the stock level of one product. The database guarantees
// 0 <= Reserved <= OnHand, so Available is never negative.
type Stock struct {
	ProductID uuid.UUID
	OnHand    int
	Reserved  int
	UpdatedAt time.Time
	// Version grows with every change of the row (a trigger bumps it), so
	// consumers can order stock events.
	Version int64
}

// Available is what can still be ordered: on hand minus reserved.
func (s Stock) Available() int { return s.OnHand - s.Reserved }

// SetOnHand returns s with OnHand set to n. n must already be a valid level
// (see ParseOnHand). Setting the level below what orders in flight have
// reserved is refused with fault.Conflict "below_reserved" (409): the
// reservations must be released or committed first, never silently oversold.
func (s Stock) SetOnHand(n int) (Stock, error) {
	if err := ValidOnHand(n); err != nil {
		return s, err
	}
	if n < s.Reserved {
		return s, fault.E(fault.Conflict, fault.CodeBelowReserved,
			fmt.Sprintf("on_hand %d is below the %d units reserved by orders in progress", n, s.Reserved))
	}
	s.OnHand = n
	return s, nil
}

// ValidOnHand reports a fault.Invalid error unless 0 <= n <= MaxOnHand.
func ValidOnHand(n int) error {
	if n < 0 || n > MaxOnHand {
		return errOnHandRange
	}
	return nil
}

var errOnHandRange = fault.E(fault.Invalid, fault.CodeInvalidRequest,
	fmt.Sprintf("on_hand must be an integer from 0 to %d", MaxOnHand))

// ParseOnHand interprets the raw JSON value of an on_hand field. A missing or
// null value or an out-of-range integer is fault.Invalid (422); a value that
// is not a JSON integer (a string, a boolean, an object, or a number with a
// fraction or an exponent, 2.0 and 1e3 included) or an integer too large for
// an int64 is fault.Malformed (400 invalid_json), like any other wrong type.
func ParseOnHand(raw json.RawMessage) (int, error) {
	n, err := jsonint.Parse(raw, "on_hand")
	if err != nil {
		return 0, err
	}
	if n < 0 || n > MaxOnHand {
		return 0, errOnHandRange
	}
	return int(n), nil
}

// View is the public JSON shape of a stock level (get-stock's and set-stock's
// answer), also the data of the stock.changed.v1 event. Version is the row's
// version, the one the ETag carries: it orders the events of one product (a
// larger version is newer), so a consumer can ignore one that arrives late.
type View struct {
	ProductID uuid.UUID `json:"product_id"`
	OnHand    int       `json:"on_hand"`
	Reserved  int       `json:"reserved"`
	Available int       `json:"available"`
	Version   int64     `json:"version"`
}

// ViewOf returns the public shape of s, also the stock.changed.v1 data.
func ViewOf(s Stock) View {
	return View{ProductID: s.ProductID, OnHand: s.OnHand, Reserved: s.Reserved, Available: s.Available(), Version: s.Version}
}
