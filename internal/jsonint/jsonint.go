// Package jsonint reads an integer of a request body as api/openapi.yaml
// says every integer is written: a JSON number without a fraction or an
// exponent that fits in 64 bits. encoding/json reads 2.0 and 1e2 into an int
// field as errors but a json.RawMessage field keeps them, and a field kept
// raw (so that a missing value is told from a wrong one, as cart's quantity
// and inventory's on_hand are) is read here, in one place, so every such
// field answers the same codes and messages. It is a kernel package: the
// domain packages import it (docs/architecture.md).
package jsonint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/shopfaas/shop/internal/fault"
)

// Parse reads raw, the JSON value of the body's field named field, as an
// integer; its range is the caller's business. A missing or null value is
// fault.Invalid (422 invalid_request, "<field> is required"); a value that
// is not a JSON integer (a string, a boolean, an object, or a number with a
// fraction or an exponent, 2.0 and 1e2 included) or an integer too large for
// an int64 is fault.Malformed (400 invalid_json, `field "<field>" must be an
// integer`), as the decoder answers for a field of the wrong type.
func Parse(raw json.RawMessage, field string) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, fault.E(fault.Invalid, fault.CodeInvalidRequest, field+" is required")
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') || bytes.ContainsAny(raw, ".eE") {
		return 0, fault.E(fault.Malformed, fault.CodeInvalidJSON, fmt.Sprintf("field %q must be an integer", field))
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		// Too large for an int64 (strconv.ErrRange): no integer the API can
		// read, as encoding/json answers for the integers of other bodies
		// (checkout's quantities, the product endpoints' amounts).
		return 0, fault.Wrap(err, fault.Malformed, fault.CodeInvalidJSON, fmt.Sprintf("field %q must be an integer", field))
	}
	return n, nil
}
