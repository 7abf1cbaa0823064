package fntest

import (
	"strings"

	"github.com/google/uuid"
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
