// Package ids reads ids as the API writes them. github.com/google/uuid's
// Parse also reads 32 hex digits without hyphens, a urn:uuid: prefix and any
// two characters around the 36 (it takes them for braces without looking at
// them), so one resource would answer under many spellings no client was
// given: spellings the edge, the logs and any cache keyed by them would count
// as different resources.
package ids

import (
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
)

// canonicalLen is the length of an id in its canonical form, 8-4-4-4-12 hex
// digits (RFC 9562 §4).
const canonicalLen = 36

// Canonical reads s as an id in its canonical form, 36 characters,
// 8-4-4-4-12 hex digits in either case: how a client may write an id it was
// given, in a path or a body (api/openapi.yaml). Only that length reaches
// uuid.Parse, which then checks the hyphens and the digits.
func Canonical(s string) (uuid.UUID, bool) {
	if len(s) != canonicalLen {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, false
	}
	return id, true
}

// Exact reads s only as the API writes an id (uuid.UUID's String: the
// canonical form in lower case), and never as the zero id, which names
// nothing the API returns. A cursor is read with it: any other spelling is
// not one the API returned.
func Exact(s string) (uuid.UUID, bool) {
	id, ok := Canonical(s)
	if !ok || id == uuid.Nil || id.String() != s {
		return uuid.Nil, false
	}
	return id, true
}

// CanonicalID is an id in a JSON body that decodes only from a string holding
// its canonical form (Canonical; the string's bytes as sent, without
// escapes), as every id a client sends is read (docs/security.md); null
// leaves it as it was, the zero id when absent, as uuid.UUID's decoding
// does. Anything else is ErrNotCanonical. uuid.UUID's own decoding would
// also read "{id}", "urn:uuid:id" and 32 bare hex digits. It encodes as
// uuid.UUID does.
type CanonicalID uuid.UUID

// ErrNotCanonical is CanonicalID's answer to a value that is not a string
// holding an id in its canonical form: 400 invalid_json, as any body that is
// not the request (fnhttp.Decode passes a type's own fault.Malformed on).
var ErrNotCanonical = fault.E(fault.Malformed, fault.CodeInvalidJSON,
	"every id must be a UUID in its canonical form, such as 0192f1e4-7c3a-7b6e-9a51-3c2d1e0f4a5b")

// UnmarshalJSON decodes b, a JSON string holding a canonical id, or null.
func (c *CanonicalID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	id, ok := CanonicalJSON(b)
	if !ok {
		return ErrNotCanonical
	}
	*c = CanonicalID(id)
	return nil
}

// CanonicalJSON reads b, a JSON value, as a string holding an id in its
// canonical form (Canonical), the string's bytes as sent: an escape, any
// other spelling or any other JSON value is not one.
func CanonicalJSON(b []byte) (uuid.UUID, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return uuid.Nil, false
	}
	return Canonical(string(b[1 : len(b)-1]))
}

// MarshalText encodes c as uuid.UUID does: the canonical form, lower case.
func (c CanonicalID) MarshalText() ([]byte, error) { return uuid.UUID(c).MarshalText() }

// UUID is c as a uuid.UUID.
func (c CanonicalID) UUID() uuid.UUID { return uuid.UUID(c) }

// String is c's canonical form, lower case.
func (c CanonicalID) String() string { return uuid.UUID(c).String() }
