// Package cart holds the rules of a shopper's cart: how many units of a
// product a line may hold, how many lines a cart may have, and how a cart is
// priced. Prices are never stored in the cart: they are read from the catalog
// each time a cart is shown, so a cart always shows today's price. The package
// does no I/O: cartredis stores the lines, the catalog client supplies prices.
package cart

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/jsonint"
)

// Limits of a cart.
const (
	// MaxQuantity is the most units one line may hold.
	MaxQuantity = 99
	// MaxLines is the most distinct products a cart may hold.
	MaxLines = 50
)

// DefaultCurrency is the currency of an empty cart's zero total.
const DefaultCurrency = "USD"

// Line is one product in a cart and how many units of it the shopper wants.
type Line struct {
	ProductID uuid.UUID
	Quantity  int
}

// ParseQuantity interprets the raw JSON value of a quantity field: an integer
// from 0 (remove the line) to MaxQuantity. A missing value or an integer
// out of that range is fault.Invalid (422); a value that is not a JSON integer
// (a string, a boolean, or a number with a fraction or an exponent, 2.0 and
// 1e2 included) or an integer too large for an int64 is fault.Malformed (400
// invalid_json), as api/openapi.yaml says of every integer in a body and as
// the decoder answers for the others.
func ParseQuantity(raw json.RawMessage) (int, error) {
	n, err := jsonint.Parse(raw, "quantity")
	if err != nil {
		return 0, err
	}
	if n < 0 || n > MaxQuantity {
		return 0, fault.E(fault.Invalid, fault.CodeInvalidQuantity,
			fmt.Sprintf("quantity must be an integer from 0 to %d (0 removes the line)", MaxQuantity))
	}
	return int(n), nil
}

// Set returns lines with product's quantity set to quantity (0 removes the
// line), keeping the order of the other lines. A new line beyond MaxLines is
// fault.Invalid "cart_full".
func Set(lines []Line, product uuid.UUID, quantity int) ([]Line, error) {
	if quantity < 0 || quantity > MaxQuantity {
		return nil, fault.E(fault.Invalid, fault.CodeInvalidQuantity,
			fmt.Sprintf("quantity must be an integer from 0 to %d", MaxQuantity))
	}
	out := slices.Clone(lines)
	i := slices.IndexFunc(out, func(l Line) bool { return l.ProductID == product })
	switch {
	case quantity == 0 && i >= 0:
		return slices.Delete(out, i, i+1), nil
	case quantity == 0:
		return out, nil
	case i >= 0:
		out[i].Quantity = quantity
		return out, nil
	case len(out) >= MaxLines:
		return nil, ErrFull
	default:
		return append(out, Line{ProductID: product, Quantity: quantity}), nil
	}
}

// ErrChanged refuses a line whose cart gained, after it was read, a line that
// may be of another currency: the new line's currency was checked against a
// cart that is no longer the stored one. The service reads and decides again;
// past its tries it answers this, which the client may retry.
var ErrChanged = fault.E(fault.Unavailable, fault.CodeUnavailable, "the cart changed while it was being updated; try again")

// ErrFull refuses a line beyond MaxLines.
var ErrFull = fault.E(fault.Invalid, fault.CodeCartFull, fmt.Sprintf("a cart holds at most %d different products", MaxLines))

// Money is an amount in integer minor units of an ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// ItemView is one priced line as the API shows it.
type ItemView struct {
	ProductID uuid.UUID `json:"product_id"`
	Quantity  int       `json:"quantity"`
	UnitPrice Money     `json:"unit_price"`
	LineTotal Money     `json:"line_total"`
}

// View is a priced cart as the API shows it.
type View struct {
	Items []ItemView `json:"items"`
	Total Money      `json:"total"`
}

// Price prices lines with the catalog's current unit prices. Lines whose
// product has no price (unknown or archived) are left out of the view and returned in
// dropped, so the caller can remove them from the stored cart. All remaining
// products must share one currency: mixing is fault.Conflict
// "currency_mismatch" (see Mixed). Totals that would overflow are fault.Invalid.
func Price(lines []Line, prices map[uuid.UUID]Money) (v View, dropped []uuid.UUID, err error) {
	if err := oneCurrency(lines, prices); err != nil {
		return View{}, nil, err
	}
	v = View{Items: []ItemView{}, Total: Money{Currency: DefaultCurrency}}
	currency := ""
	for _, l := range lines {
		price, ok := prices[l.ProductID]
		if !ok {
			dropped = append(dropped, l.ProductID)
			continue
		}
		currency = price.Currency
		lineTotal, ok := mul(price.Amount, int64(l.Quantity))
		if !ok {
			return View{}, nil, errOverflow
		}
		total, ok := add(v.Total.Amount, lineTotal)
		if !ok {
			return View{}, nil, errOverflow
		}
		v.Total.Amount = total
		v.Items = append(v.Items, ItemView{ProductID: l.ProductID, Quantity: l.Quantity,
			UnitPrice: price, LineTotal: Money{Amount: lineTotal, Currency: currency}})
	}
	if currency != "" {
		v.Total.Currency = currency
	}
	return v, dropped, nil
}

// Mixed returns the fault.Conflict "currency_mismatch" of a cart whose
// products are priced in more than one currency. So that a client can tell
// which lines to remove, its message names the products of each currency and
// its problem carries them in the extension member "currencies" (currency →
// product ids, in the cart's order), as api/openapi.yaml declares. prefix,
// when not empty, starts the message (a removal says it was written).
func Mixed(prefix string, currencies map[string][]uuid.UUID) *fault.Error {
	names := slices.Sorted(maps.Keys(currencies))
	parts := make([]string, len(names))
	for i, c := range names {
		ids := make([]string, len(currencies[c]))
		for j, id := range currencies[c] {
			ids[j] = id.String()
		}
		parts[i] = c + ": " + strings.Join(ids, ", ")
	}
	err := fault.E(fault.Conflict, fault.CodeCurrencyMismatch,
		prefix+"a cart holds products of one currency; it has "+strings.Join(parts, "; "))
	err.Members = map[string]any{"currencies": currencies}
	return err
}

// MixedCurrencies returns the products of each currency that err, a
// "currency_mismatch" of Mixed, names; false for any other error.
func MixedCurrencies(err error) (map[string][]uuid.UUID, bool) {
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Code != fault.CodeCurrencyMismatch {
		return nil, false
	}
	currencies, ok := fe.Members["currencies"].(map[string][]uuid.UUID)
	return currencies, ok
}

// oneCurrency is nil when the priced lines share one currency, else Mixed.
func oneCurrency(lines []Line, prices map[uuid.UUID]Money) error {
	currencies := map[string][]uuid.UUID{}
	for _, l := range lines {
		if price, ok := prices[l.ProductID]; ok {
			currencies[price.Currency] = append(currencies[price.Currency], l.ProductID)
		}
	}
	if len(currencies) > 1 {
		return Mixed("", currencies)
	}
	return nil
}

var errOverflow = fault.E(fault.Invalid, fault.CodeInvalidRequest, "the cart's total is too large")

func mul(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || (b != 0 && a > math.MaxInt64/b) {
		return 0, false
	}
	return a * b, true
}

func add(a, b int64) (int64, bool) {
	if b > math.MaxInt64-a {
		return 0, false
	}
	return a + b, true
}
