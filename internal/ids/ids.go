// Package ids reads ids as the API writes them. github.com/google/uuid's
// Parse also reads 32 hex digits without hyphens, a urn:uuid: prefix and any
// two characters around the 36 (it takes them for braces without looking at
// them), so one resource would answer under many spellings no client was
// given: spellings the edge, the logs and any cache keyed by them would count
// as different resources.
package ids

import "github.com/google/uuid"

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
