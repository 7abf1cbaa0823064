package cart_test

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/fault"
)

func TestParseQuantity(t *testing.T) {
	for raw, want := range map[string]int{"0": 0, "1": 1, "99": 99} {
		if got, err := cart.ParseQuantity(json.RawMessage(raw)); err != nil || got != want {
			t.Errorf("ParseQuantity(%s) = %d, %v", raw, got, err)
		}
	}
	for raw, kind := range map[string]fault.Kind{"100": fault.Invalid, "-1": fault.Invalid, "9223372036854775807": fault.Invalid,
		"-9223372036854775808": fault.Invalid, "99999999999999999999": fault.Malformed, "-9223372036854775809": fault.Malformed,
		"": fault.Invalid, "null": fault.Invalid, `"3"`: fault.Malformed, "false": fault.Malformed} {
		if _, err := cart.ParseQuantity(json.RawMessage(raw)); fault.KindOf(err) != kind || err == nil {
			t.Errorf("ParseQuantity(%s): err = %v, want kind %v", raw, err, kind)
		}
	}
}

// TestAQuantityWithAFractionOrAnExponentIsMalformed: api/openapi.yaml says an
// integer written with a fraction or an exponent is 400 invalid_json, as
// checkout's decoder answers for its quantities; 2.0 and 1e1, which JSON
// Schema counts as integers in range, included.
func TestAQuantityWithAFractionOrAnExponentIsMalformed(t *testing.T) {
	for _, raw := range []string{"2.0", "2.5", "1e1", "1E1", "10e-1", "-0.0", "1e400"} {
		_, err := cart.ParseQuantity(json.RawMessage(raw))
		if !fault.Is(err, fault.Malformed, fault.CodeInvalidJSON) {
			t.Errorf("ParseQuantity(%s): err = %v, want malformed invalid_json", raw, err)
		}
	}
}

func TestSet(t *testing.T) {
	a, b := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	lines, err := cart.Set(nil, a, 2)
	if err != nil {
		t.Fatal(err)
	}
	lines, _ = cart.Set(lines, b, 1)
	lines, _ = cart.Set(lines, a, 5)
	if diff := cmp.Diff([]cart.Line{{ProductID: a, Quantity: 5}, {ProductID: b, Quantity: 1}}, lines); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	lines, _ = cart.Set(lines, a, 0)
	if diff := cmp.Diff([]cart.Line{{ProductID: b, Quantity: 1}}, lines); diff != "" {
		t.Fatalf("after removal (-want +got):\n%s", diff)
	}
	if _, err := cart.Set(lines, a, cart.MaxQuantity+1); !fault.Is(err, fault.Invalid, "invalid_quantity") {
		t.Fatalf("too many units: %v", err)
	}
	full := make([]cart.Line, cart.MaxLines)
	for i := range full {
		full[i] = cart.Line{ProductID: uuid.Must(uuid.NewV7()), Quantity: 1}
	}
	if _, err := cart.Set(full, a, 1); !fault.Is(err, fault.Invalid, "cart_full") {
		t.Fatalf("51st line: %v", err)
	}
	if _, err := cart.Set(full, full[0].ProductID, 9); err != nil {
		t.Fatalf("changing a line of a full cart: %v", err)
	}
}

func TestPrice(t *testing.T) {
	a, b, gone := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	usd := func(n int64) cart.Money { return cart.Money{Amount: n, Currency: "USD"} }
	prices := map[uuid.UUID]cart.Money{a: usd(1299), b: usd(5)}
	v, dropped, err := cart.Price([]cart.Line{{ProductID: a, Quantity: 3}, {ProductID: gone, Quantity: 1}, {ProductID: b, Quantity: 2}}, prices)
	if err != nil {
		t.Fatal(err)
	}
	want := cart.View{Items: []cart.ItemView{
		{ProductID: a, Quantity: 3, UnitPrice: usd(1299), LineTotal: usd(3897)},
		{ProductID: b, Quantity: 2, UnitPrice: usd(5), LineTotal: usd(10)},
	}, Total: usd(3907)}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uuid.UUID{gone}, dropped); diff != "" {
		t.Fatalf("dropped (-want +got):\n%s", diff)
	}

	prices[b] = cart.Money{Amount: 5, Currency: "EUR"}
	_, _, err = cart.Price([]cart.Line{{ProductID: a, Quantity: 1}, {ProductID: gone, Quantity: 1}, {ProductID: b, Quantity: 1}}, prices)
	if !fault.Is(err, fault.Conflict, "currency_mismatch") {
		t.Fatalf("mixed currencies: %v", err)
	}
	// The conflict names the products of each currency (not the one without
	// a price), so a client can tell which lines to remove.
	currencies, ok := cart.MixedCurrencies(err)
	if diff := cmp.Diff(map[string][]uuid.UUID{"USD": {a}, "EUR": {b}}, currencies); !ok || diff != "" {
		t.Fatalf("currencies of %v (-want +got):\n%s", err, diff)
	}
	wantMessage := fmt.Sprintf("a cart holds products of one currency; it has EUR: %s; USD: %s", b, a)
	if got := err.(*fault.Error).Message; got != wantMessage {
		t.Fatalf("message = %q, want %q", got, wantMessage)
	}
	prices[a] = usd(math.MaxInt64 / 2)
	if _, _, err := cart.Price([]cart.Line{{ProductID: a, Quantity: 3}}, prices); !fault.Is(err, fault.Invalid, "") {
		t.Fatalf("overflow: %v", err)
	}
	empty, _, err := cart.Price(nil, prices)
	if err != nil || len(empty.Items) != 0 || empty.Items == nil || empty.Total != usd(0) {
		t.Fatalf("empty cart = %+v, %v", empty, err)
	}
}
