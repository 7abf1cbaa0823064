package fnhttp

import (
	"net/http"

	"github.com/google/uuid"
)

// canonicalIDLen is the length of an id in its canonical form, 8-4-4-4-12
// hex digits (RFC 9562 §4).
const canonicalIDLen = 36

// PathID reads the path value name as an id written in its canonical form,
// the one api/openapi.yaml names and the API writes: 36 characters, 8-4-4-4-12
// hex digits, in either case. ok is false for anything else, and the caller
// answers its own 404: an id that is not one names no resource.
//
// uuid.Parse alone also reads 32 hex digits without hyphens, a urn:uuid:
// prefix and any two characters around the 36 (it takes them for braces
// without looking at them), so one resource would answer under many paths
// that no client was given: paths the edge, the logs and any cache keyed by
// path would count as different resources. Only the canonical length reaches
// uuid.Parse, which then checks the hyphens and the hex digits.
func PathID(r *http.Request, name string) (id uuid.UUID, ok bool) {
	s := r.PathValue(name)
	if len(s) != canonicalIDLen {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, false
	}
	return id, true
}
