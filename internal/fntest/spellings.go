package fntest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
)

// OtherSpellings are spellings of id, by name, that uuid.UUID's own decoding
// reads as id and the API never writes: braces, a urn:uuid: prefix, 32 bare
// hex digits, any two characters around the 36. Every id a client sends,
// an internal caller's included, refuses them (docs/security.md, internal/ids).
func OtherSpellings(id uuid.UUID) map[string]string {
	s := id.String()
	return map[string]string{
		"braces":         "{" + s + "}",
		"urn":            "urn:uuid:" + s,
		"bare hex":       strings.ReplaceAll(s, "-", ""),
		"any two around": "x" + s + "y",
	}
}

// RefusesOtherSpellings makes, for each of id's OtherSpellings, the internal
// call of h (POST /, JSON, with credential) whose body is body(spelling), in
// a subtest named prefix and the spelling's name. Each must answer 400
// invalid_json; unchanged then fails the subtest if the refused call changed
// anything.
func RefusesOtherSpellings(t *testing.T, h http.Handler, credential string, id uuid.UUID, prefix string, body func(spelling string) string, unchanged func(t *testing.T)) {
	t.Helper()
	for name, other := range OtherSpellings(id) {
		t.Run(prefix+name, func(t *testing.T) {
			w := Do(t, h, http.MethodPost, "/", "application/json", body(other), auth.InternalHeader, credential)
			Problem(t, w, http.StatusBadRequest, "invalid_json")
			unchanged(t)
		})
	}
}
