package ids_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/ids"
)

// Canonical reads the 8-4-4-4-12 form in either case and nothing else
// uuid.Parse reads; Exact only the form the API writes, never the zero id.
func TestOnlyTheAPIsSpellingsAreRead(t *testing.T) {
	id := uuid.MustParse("0192f1e4-7c3a-7b6e-9a51-3c2d1e0f4a5b")
	s := id.String()
	for _, tt := range []struct {
		in               string
		canonical, exact bool
	}{
		{s, true, true},
		{strings.ToUpper(s), true, false},
		{uuid.Nil.String(), true, false},
		{strings.ReplaceAll(s, "-", ""), false, false},
		{"{" + s + "}", false, false},
		{"x" + s + "y", false, false},
		{"urn:uuid:" + s, false, false},
		{"0192F1E4-7c3a-7B6E-9a51-3c2d1e0f4a5b", true, false}, // mixed case
		{"URN:UUID:" + s, false, false},
		{s[:35], false, false},
		{s + "0", false, false},
		{"0192f1e47-c3a-7b6e-9a51-3c2d1e0f4a5b", false, false}, // a hyphen moved
		{strings.Replace(s, "-", "g", 1), false, false},
		{strings.Replace(s, "7c3a", "7z3a", 1), false, false},
		{" " + s[1:], false, false},
		{"", false, false},
	} {
		got, ok := ids.Canonical(tt.in)
		if ok != tt.canonical || (ok && got != id && got != uuid.Nil) {
			t.Errorf("Canonical(%q) = %v %v, want ok %v", tt.in, got, ok, tt.canonical)
		}
		got, ok = ids.Exact(tt.in)
		if ok != tt.exact || (ok && got != id) {
			t.Errorf("Exact(%q) = %v %v, want ok %v", tt.in, got, ok, tt.exact)
		}
	}
}
