package orders

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/payments"
)

func TestStatusOnlyMovesForward(t *testing.T) {
	all := []Status{Pending, Confirmed, PaymentFailed, Cancelled}
	allowed := map[[2]Status]bool{
		{Pending, Confirmed}: true, {Pending, PaymentFailed}: true, {Pending, Cancelled}: true, {Confirmed, Cancelled}: true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := from.CanMoveTo(to); got != allowed[[2]Status{from, to}] {
				t.Errorf("%s → %s: %v", from, to, got)
			}
		}
	}
	o := Order{Status: PaymentFailed}
	if err := o.MoveTo(Cancelled, "", time.Now()); !fault.Is(err, fault.Conflict, "not_cancellable") {
		t.Fatalf("cancel payment_failed: %v", err)
	}
	o = Order{Status: Cancelled}
	if err := o.MoveTo(Confirmed, "", time.Now()); !fault.Is(err, fault.Conflict, "invalid_transition") {
		t.Fatalf("confirm cancelled: %v", err)
	}
}

// Only Cancel gives ReasonCancelled, to a confirmed order: the saga reads a
// cancelled order with it as one that was confirmed first (its re-read after
// a confirmation's lost answer), so a pending order may not fail with it.
func TestOnlyCancelGivesReasonCancelled(t *testing.T) {
	o := Order{Status: Pending}
	if _, err := o.Fail(Failure{Status: Cancelled, Reason: ReasonCancelled}, time.Now()); fault.KindOf(err) != fault.Internal {
		t.Fatalf("a pending order failed as %q: %v, %s", ReasonCancelled, err, o.Status)
	}
	if o.Status != Pending {
		t.Errorf("status %s after a refused failure, want pending", o.Status)
	}
	if _, err := o.Fail(Failure{Status: Cancelled, Reason: ReasonOutOfStock}, time.Now()); err != nil || o.Status != Cancelled {
		t.Errorf("out of stock: %v, %s", err, o.Status)
	}
}

func validRequest() PlaceRequest {
	return PlaceRequest{
		Items:           []ItemRequest{{ProductID: uuid.MustParse("01900000-0000-7000-8000-000000000001"), Quantity: 2}},
		ShippingAddress: Address{Name: "Ada", Line1: "1 Loop Rd", City: "Springfield", PostalCode: "12345", Country: "US"},
		Payment:         PaymentMethod{Token: "tok_visa"},
	}
}

func TestValidate(t *testing.T) {
	p := validRequest().Items[0].ProductID
	tests := []struct {
		name string
		mod  func(*PlaceRequest)
		ok   bool
	}{
		{"valid", func(*PlaceRequest) {}, true},
		{"cart (no items)", func(r *PlaceRequest) { r.Items = nil }, true},
		{"empty items", func(r *PlaceRequest) { r.Items = []ItemRequest{} }, false},
		{"zero quantity", func(r *PlaceRequest) { r.Items[0].Quantity = 0 }, false},
		{"too many units", func(r *PlaceRequest) { r.Items[0].Quantity = MaxQuantity + 1 }, false},
		{"duplicate product", func(r *PlaceRequest) { r.Items = append(r.Items, ItemRequest{p, 1}) }, false},
		{"nil product", func(r *PlaceRequest) { r.Items[0].ProductID = uuid.Nil }, false},
		{"blank name", func(r *PlaceRequest) { r.ShippingAddress.Name = "  " }, false},
		{"long city", func(r *PlaceRequest) { r.ShippingAddress.City = string(make([]byte, 101)) }, false},
		{"lowercase country", func(r *PlaceRequest) { r.ShippingAddress.Country = "us" }, false},
		{"card number", func(r *PlaceRequest) { r.Payment.Token = "4242424242424242" }, false},
		{"token with spaces", func(r *PlaceRequest) { r.Payment.Token = "tok_ visa" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.mod(&r)
			err := r.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && fault.KindOf(err) != fault.Invalid {
				t.Fatalf("kind %s, want invalid", fault.KindOf(err))
			}
		})
	}
}

func TestHashIsCanonical(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	r1 := validRequest()
	r1.Items = []ItemRequest{{a, 1}, {b, 2}}
	r2 := r1
	r2.Items = []ItemRequest{{b, 2}, {a, 1}}
	if r1.Hash() != r2.Hash() {
		t.Fatal("line order changed the hash")
	}
	r3 := r1
	r3.Items = []ItemRequest{{a, 1}, {b, 3}}
	cart := r1
	cart.Items = nil
	if r1.Hash() == r3.Hash() || r1.Hash() == cart.Hash() {
		t.Fatal("different requests share a hash")
	}
}

func TestPrice(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	lines, total, err := Price([]ItemRequest{{a, 2}, {b, 1}}, map[uuid.UUID]Money{a: {1299, "USD"}, b: {500, "USD"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{{a, 2, Money{1299, "USD"}}, {b, 1, Money{500, "USD"}}}
	if diff := cmp.Diff(want, lines); diff != "" || total != (Money{3098, "USD"}) {
		t.Fatalf("lines (-want +got):\n%s total %v", diff, total)
	}
	if _, _, err := Price([]ItemRequest{{a, 1}, {b, 1}}, map[uuid.UUID]Money{a: {1, "USD"}, b: {1, "EUR"}}); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("mixed currencies: %v", err)
	}
	if _, _, err := Price([]ItemRequest{{a, 1000}}, map[uuid.UUID]Money{a: {math.MaxInt64 / 10, "USD"}}); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("overflow: %v", err)
	}
	if _, _, err := Price([]ItemRequest{{a, 1}}, map[uuid.UUID]Money{}); !fault.Is(err, fault.Invalid, "unknown_product") {
		t.Fatalf("unknown product: %v", err)
	}
	// A total payments would refuse is refused here, before any order is
	// written, with a message naming the limit (issue 12, finding 6).
	if _, total, err := Price([]ItemRequest{{a, 1}}, map[uuid.UUID]Money{a: {payments.MaxAmount, "USD"}}); err != nil || total.Amount != payments.MaxAmount {
		t.Fatalf("a total of exactly payments.MaxAmount: %v %v", total, err)
	}
	_, _, err = Price([]ItemRequest{{a, 2}}, map[uuid.UUID]Money{a: {payments.MaxAmount/2 + 1, "USD"}})
	if !fault.Is(err, fault.Invalid, fault.CodeInvalidRequest) || !strings.Contains(err.Error(), "largest payment") {
		t.Fatalf("a total above payments.MaxAmount: %v", err)
	}
}

// A cart is priced on the lines whose product has a price: the others
// (get-product's 404: archived or unknown) are skipped and named, the total
// is the kept lines', and a cart with none left is cart_empty. The refusals
// of Price still apply to the kept lines.
func TestPriceCartSkipsProductsWithoutAPrice(t *testing.T) {
	a, gone, b, c := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	lines, total, skipped, err := PriceCart([]ItemRequest{{a, 2}, {gone, 5}, {b, 1}}, map[uuid.UUID]Money{a: {1299, "USD"}, b: {500, "USD"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{{a, 2, Money{1299, "USD"}}, {b, 1, Money{500, "USD"}}}
	if diff := cmp.Diff(want, lines); diff != "" || total != (Money{3098, "USD"}) || !slices.Equal(skipped, []uuid.UUID{gone}) {
		t.Fatalf("lines (-want +got):\n%s total %v skipped %v", diff, total, skipped)
	}
	if _, _, skipped, err := PriceCart([]ItemRequest{{gone, 1}}, map[uuid.UUID]Money{}); !fault.Is(err, fault.Invalid, fault.CodeCartEmpty) || len(skipped) != 1 {
		t.Fatalf("nothing for sale: %v %v, want cart_empty", skipped, err)
	}
	// Mixed currencies among the kept lines are get-cart's answer to the
	// same cart: currency_mismatch naming the kept products of each.
	_, _, _, err = PriceCart([]ItemRequest{{a, 1}, {gone, 1}, {b, 1}, {c, 1}}, map[uuid.UUID]Money{a: {1, "USD"}, b: {1, "EUR"}, c: {1, "USD"}})
	mixed, ok := cart.MixedCurrencies(err)
	if !fault.Is(err, fault.Conflict, fault.CodeCurrencyMismatch) || !ok {
		t.Fatalf("mixed currencies among the kept lines: %v, want currency_mismatch", err)
	}
	if diff := cmp.Diff(map[string][]uuid.UUID{"USD": {a, c}, "EUR": {b}}, mixed); diff != "" {
		t.Errorf("currencies (-want +got):\n%s", diff)
	}
	// A request that names its items is not a cart: Price still refuses it
	// as an invalid request.
	if _, _, err := Price([]ItemRequest{{a, 1}, {b, 1}}, map[uuid.UUID]Money{a: {1, "USD"}, b: {1, "EUR"}}); !fault.Is(err, fault.Invalid, fault.CodeInvalidRequest) {
		t.Errorf("items in two currencies: %v, want invalid_request", err)
	}
	if _, _, _, err := PriceCart(nil, map[uuid.UUID]Money{}); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("no lines: %v", err)
	}
}

// A line's product id is read only from a string holding its canonical form;
// anything else is errProductID, whose detail names the field (json's own
// error for a number named the Go type, orders.canonicalID). A line with
// either case of the canonical form decodes to the id.
func TestALinesProductIDIsReadOnlyInItsCanonicalForm(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	for _, v := range []string{`5`, `null`, `{}`, `"` + strings.ReplaceAll(id.String(), "-", "") + `"`,
		`"{` + id.String() + `}"`, `"urn:uuid:` + id.String() + `"`, `"\u0030` + id.String()[1:] + `"`} {
		var l ItemList
		if err := json.Unmarshal([]byte(`[{"product_id":`+v+`,"quantity":1}]`), &l); !errors.Is(err, errProductID) {
			t.Errorf("product_id %s: %v, want errProductID", v, err)
		}
	}
	for _, v := range []string{id.String(), strings.ToUpper(id.String())} {
		var l ItemList
		if err := json.Unmarshal([]byte(`[{"product_id":"`+v+`","quantity":2}]`), &l); err != nil ||
			len(l) != 1 || l[0] != (ItemRequest{ProductID: id, Quantity: 2}) {
			t.Errorf("product_id %s: %+v %v, want the line", v, l, err)
		}
	}
}

// itemLine, the form ItemList decodes, has ItemRequest's fields under the
// same JSON names: a field added to one alone would be refused as unknown,
// or dropped, by the strict decoder.
func TestItemLineIsItemRequestsWireForm(t *testing.T) {
	names := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			out = append(out, rt.Field(i).Name+" "+rt.Field(i).Tag.Get("json"))
		}
		return out
	}
	if diff := cmp.Diff(names(ItemRequest{}), names(itemLine{})); diff != "" {
		t.Errorf("ItemRequest (-) and itemLine (+) differ:\n%s", diff)
	}
}

// A shipping address's text fields refuse the invisible characters a name
// refuses (formatchar.InName): U+200B, a bidi override, a joiner between
// Latin letters; a Persian non-joiner between letters passes. The answer is
// the names' 422 invalid_request naming the field and the code point. Until
// 2026-12-08 an address held any of them.
func TestAnAddressRefusesInvisibleCharacters(t *testing.T) {
	fields := map[string]func(*Address) *string{
		"name":        func(a *Address) *string { return &a.Name },
		"line1":       func(a *Address) *string { return &a.Line1 },
		"city":        func(a *Address) *string { return &a.City },
		"postal_code": func(a *Address) *string { return &a.PostalCode },
	}
	for field, at := range fields {
		for _, v := range []string{"A\u200bB", "\u202eAB", "A\u200dB", "\u200c12345"} {
			r := validRequest()
			*at(&r.ShippingAddress) = v
			err := r.Validate()
			if fault.KindOf(err) != fault.Invalid || fault.CodeOf(err) != fault.CodeInvalidRequest ||
				!strings.Contains(err.Error(), "shipping_address."+field+" must not contain the invisible") {
				t.Errorf("%s %+q: Validate() = %v, want 422 invalid_request naming the field", field, v, err)
			}
		}
		r := validRequest()
		*at(&r.ShippingAddress) = "\u06a9\u062a\u0627\u0628\u200c\u0647\u0627"
		if err := r.Validate(); err != nil {
			t.Errorf("%s with a Persian non-joiner: %v, want accepted", field, err)
		}
	}
}
