package jsonint_test

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/jsonint"
)

// Only a JSON integer in 64 bits is read; a missing value is Invalid and
// anything else Malformed, each with the message naming the field that the
// callers' contracts (cart's quantity, inventory's on_hand) answer.
func TestOnlyAJSONIntegerIn64BitsIsRead(t *testing.T) {
	for raw, want := range map[string]int64{"0": 0, " 7 ": 7, "-3": -3,
		strconv.FormatInt(math.MaxInt64, 10): math.MaxInt64, strconv.FormatInt(math.MinInt64, 10): math.MinInt64} {
		if got, err := jsonint.Parse(json.RawMessage(raw), "count"); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", raw, got, err, want)
		}
	}
	for _, tt := range []struct {
		raw     string
		kind    fault.Kind
		code    fault.Code
		message string
	}{
		{"", fault.Invalid, fault.CodeInvalidRequest, "count is required"},
		{" null ", fault.Invalid, fault.CodeInvalidRequest, "count is required"},
		{`"3"`, fault.Malformed, fault.CodeInvalidJSON, `field "count" must be an integer`},
		{"true", fault.Malformed, fault.CodeInvalidJSON, `field "count" must be an integer`},
		{"{}", fault.Malformed, fault.CodeInvalidJSON, `field "count" must be an integer`},
		{"2.0", fault.Malformed, fault.CodeInvalidJSON, `field "count" must be an integer`},
		{"1e2", fault.Malformed, fault.CodeInvalidJSON, `field "count" must be an integer`},
		{"-0.0", fault.Malformed, fault.CodeInvalidJSON, `field "count" must be an integer`},
		{"9223372036854775808", fault.Malformed, fault.CodeInvalidJSON, `field "count" must be an integer`},
		{"-9223372036854775809", fault.Malformed, fault.CodeInvalidJSON, `field "count" must be an integer`},
	} {
		_, err := jsonint.Parse(json.RawMessage(tt.raw), "count")
		var fe *fault.Error
		if !fault.Is(err, tt.kind, tt.code) || !errors.As(err, &fe) || fe.Message != tt.message {
			t.Errorf("Parse(%q): err = %v; want %v %s %q", tt.raw, err, tt.kind, tt.code, tt.message)
		}
	}
}
