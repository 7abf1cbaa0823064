package inventory_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inventory"
)

func TestParseOnHand(t *testing.T) {
	tests := []struct {
		raw      string
		want     int
		wantKind fault.Kind
		wantErr  bool
	}{
		{"0", 0, 0, false},
		{"42", 42, 0, false},
		{"1000000", inventory.MaxOnHand, 0, false},
		{"1000001", 0, fault.Invalid, true},
		{"-1", 0, fault.Invalid, true},
		// An integer with a fraction or an exponent is 400 invalid_json, as
		// api/openapi.yaml says of every integer in a body, in range or not.
		{"1.5", 0, fault.Malformed, true},
		{"2.0", 0, fault.Malformed, true},
		{"1e3", 0, fault.Malformed, true},
		{"1E3", 0, fault.Malformed, true},
		{"1e400", 0, fault.Malformed, true},
		// An integer in 64 bits but out of range is 422; one too large for
		// an int64 is no integer the API can read: 400 invalid_json, as the
		// decoder answers for checkout's quantities and prices.
		{"9223372036854775807", 0, fault.Invalid, true},
		{"-9223372036854775808", 0, fault.Invalid, true},
		{"9223372036854775808", 0, fault.Malformed, true},
		{"-9223372036854775809", 0, fault.Malformed, true},
		{"123456789012345678901234567890", 0, fault.Malformed, true},
		{"", 0, fault.Invalid, true},
		{"null", 0, fault.Invalid, true},
		{`"5"`, 0, fault.Malformed, true},
		{"true", 0, fault.Malformed, true},
		{"[1]", 0, fault.Malformed, true},
	}
	for _, tt := range tests {
		got, err := inventory.ParseOnHand(json.RawMessage(tt.raw))
		if tt.wantErr {
			if err == nil || fault.KindOf(err) != tt.wantKind {
				t.Errorf("ParseOnHand(%s) = %d, %v; want kind %v", tt.raw, got, err, tt.wantKind)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseOnHand(%s) = %d, %v; want %d", tt.raw, got, err, tt.want)
		}
	}
}

func TestSetOnHand(t *testing.T) {
	s := inventory.Stock{OnHand: 10, Reserved: 4}
	if _, err := s.SetOnHand(3); !fault.Is(err, fault.Conflict, "below_reserved") {
		t.Fatalf("below reserved: %v", err)
	}
	if _, err := s.SetOnHand(-1); !fault.Is(err, fault.Invalid, "") {
		t.Fatalf("negative: %v", err)
	}
	got, err := s.SetOnHand(4)
	if err != nil || got.OnHand != 4 || got.Available() != 0 {
		t.Fatalf("SetOnHand(4) = %+v, %v", got, err)
	}
	if s.OnHand != 10 {
		t.Fatal("SetOnHand changed its receiver")
	}
}

// Only a confirmed order's hold is sold; a failed or cancelled order's is
// given back; a pending order's is kept; an unknown order's is given back
// only past its expiry; a status the settlement does not know keeps it.
func TestSettleDecidesByOrderStatus(t *testing.T) {
	cases := []struct {
		status      inventory.OrderStatus
		known, past bool
		want        inventory.Outcome
	}{
		{inventory.OrderConfirmed, true, false, inventory.Sell},
		{inventory.OrderConfirmed, true, true, inventory.Sell},
		{inventory.OrderPaymentFailed, true, false, inventory.Release},
		{inventory.OrderCancelled, true, true, inventory.Release},
		{inventory.OrderPending, true, false, inventory.Keep},
		{inventory.OrderPending, true, true, inventory.Keep},
		{"", false, false, inventory.Keep},
		{"", false, true, inventory.Expire},
		{"refunded", true, true, inventory.Keep},
	}
	for _, c := range cases {
		if got := inventory.Settle(c.status, c.known, c.past); got != c.want {
			t.Errorf("Settle(%q, known %v, past %v) = %d, want %d", c.status, c.known, c.past, got, c.want)
		}
	}
}

// A hold's TTL is checked as the seconds the caller sent: 2^55+30 seconds
// overflows a Duration to exactly 30 s and was accepted as such.
func TestHoldTTLOutOfRangeIsRefused(t *testing.T) {
	lines := []inventory.Line{{ProductID: uuid.New(), Quantity: 1}}
	for _, secs := range []int{29, 3601, -30, 1<<55 + 30, -(1<<55 - 30)} {
		if _, err := inventory.NewHoldRequest(uuid.New(), lines, secs); fault.KindOf(err) != fault.Invalid {
			t.Errorf("ttl_seconds %d: %v, want fault.Invalid", secs, err)
		}
	}
	for secs, want := range map[int]time.Duration{0: inventory.DefaultHoldTTL, 30: 30 * time.Second, 3600: time.Hour} {
		req, err := inventory.NewHoldRequest(uuid.New(), lines, secs)
		if err != nil || req.TTL != want {
			t.Errorf("ttl_seconds %d: TTL %v, %v; want %v", secs, req.TTL, err, want)
		}
	}
}

// set-stock's headers: neither is 428; If-Match is RFC 9110's as fnhttp
// reads it ("*" or a list of entity tags; a malformed field matches nothing,
// even when a piece of it between commas is the row's tag, and so does one
// sent empty); If-None-Match may only be * (sent empty it is no *). What each parsed precondition
// lets through is decided on the row (exists, at which version).
func TestParsePrecondition(t *testing.T) {
	id := uuid.MustParse("01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f")
	row := inventory.Stock{ProductID: id, OnHand: 5, Version: 7}
	if got := row.ETag(); got != `"stock-01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f-7"` {
		t.Fatalf("ETag %s", got)
	}
	const pf, ok = fault.PreconditionFailed, fault.Kind(-1)
	cases := []struct {
		ifMatch     []string   // the If-Match field's lines; nil when not sent
		ifNoneMatch []string   // nil when not sent
		parse       fault.Kind // ok when it parses
		onRow       fault.Kind // Check on the row
		onNone      fault.Kind // Check on no row
	}{
		{nil, nil, fault.PreconditionRequired, ok, ok},
		{nil, []string{" "}, fault.Invalid, ok, ok},
		{nil, []string{""}, fault.Invalid, ok, ok}, // sent empty: not *, not a missing precondition
		{[]string{row.ETag()}, []string{""}, fault.Invalid, ok, ok},
		{nil, []string{"*", "*"}, fault.Invalid, ok, ok},
		{nil, []string{" * "}, ok, pf, ok},
		{[]string{row.ETag()}, nil, ok, ok, pf},
		{[]string{` "a" , ` + row.ETag() + `,`}, nil, ok, ok, pf},
		{[]string{`"a"`, row.ETag()}, nil, ok, ok, pf},
		{[]string{`"a,b", ` + row.ETag()}, nil, ok, ok, pf},
		{[]string{`"stock-` + id.String() + `-6"`}, nil, ok, pf, pf}, // another version
		{[]string{`"` + id.String() + `-7"`}, nil, ok, pf, pf},       // the product's ETag at the level's version
		{[]string{"W/" + row.ETag()}, nil, ok, pf, pf},
		{[]string{`W/"a, ` + row.ETag()}, nil, ok, pf, pf},
		{[]string{`"a, ` + row.ETag()}, nil, ok, pf, pf},
		{[]string{"*, " + row.ETag()}, nil, ok, pf, pf},
		{[]string{"*", row.ETag()}, nil, ok, pf, pf},
		{[]string{",,,,"}, nil, ok, pf, pf},
		{[]string{""}, nil, ok, pf, pf}, // sent empty: a list naming no version, not a missing precondition
		{[]string{" \t"}, nil, ok, pf, pf},
		{[]string{""}, []string{"*"}, ok, pf, pf},
		{[]string{"*"}, nil, ok, ok, pf},
		{nil, []string{"*"}, ok, pf, ok},
		{[]string{row.ETag()}, []string{"*"}, ok, pf, pf},
		{nil, []string{`"x"`}, fault.Invalid, ok, ok},
		{nil, []string{"W/*"}, fault.Invalid, ok, ok},
	}
	kind := func(err error) fault.Kind {
		if err == nil {
			return ok
		}
		return fault.KindOf(err)
	}
	name := func(k fault.Kind) string { // ok has no name of its own
		if k == ok {
			return "ok"
		}
		return k.String()
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodPut, "/", nil)
		for _, line := range c.ifMatch {
			r.Header.Add("If-Match", line)
		}
		p, err := inventory.ParsePrecondition(fnhttp.ParseIfMatch(r), c.ifNoneMatch)
		if kind(err) != c.parse {
			t.Errorf("If-Match %q, If-None-Match %q: %v, want kind %s", c.ifMatch, c.ifNoneMatch, err, name(c.parse))
			continue
		}
		if err != nil {
			continue
		}
		if got := kind(p.Check(row, true)); got != c.onRow {
			t.Errorf("If-Match %q, If-None-Match %q on the row: %s, want %s", c.ifMatch, c.ifNoneMatch, name(got), name(c.onRow))
		}
		if got := kind(p.Check(inventory.Stock{}, false)); got != c.onNone {
			t.Errorf("If-Match %q, If-None-Match %q on no row: %s, want %s", c.ifMatch, c.ifNoneMatch, name(got), name(c.onNone))
		}
	}
	if err := (inventory.Precondition{}).Check(row, true); !fault.Is(err, fault.PreconditionRequired, fault.CodePreconditionRequired) {
		t.Errorf("the zero precondition: %v, want precondition_required", err)
	}
	if _, err := inventory.ParsePrecondition(nil, nil); !fault.Is(err, fault.PreconditionRequired, fault.CodePreconditionRequired) {
		t.Errorf("no If-Match field at all: %v, want precondition_required", err)
	}
}
