package ids_test

import (
	"encoding/json"
	"errors"
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

// A CanonicalID decodes only from a JSON string holding the canonical form
// (either case), null leaving it as it was; everything else, every other
// spelling uuid.UUID's own decoding reads among it, is ErrNotCanonical. It
// encodes as uuid.UUID does.
func TestACanonicalIDDecodesOnlyTheCanonicalForm(t *testing.T) {
	id := uuid.MustParse("0192f1e4-7c3a-7b6e-9a51-3c2d1e0f4a5b")
	s := id.String()
	for _, tt := range []struct {
		in   string
		want uuid.UUID
		ok   bool
	}{
		{`"` + s + `"`, id, true},
		{`"` + strings.ToUpper(s) + `"`, id, true},
		{`null`, uuid.Nil, true},
		{`"{` + s + `}"`, uuid.Nil, false},
		{`"urn:uuid:` + s + `"`, uuid.Nil, false},
		{`"` + strings.ReplaceAll(s, "-", "") + `"`, uuid.Nil, false},
		{`"x` + s + `y"`, uuid.Nil, false},
		{`"\u0030` + s[1:] + `"`, uuid.Nil, false}, // an escape: not the bytes as the API writes them
		{`""`, uuid.Nil, false},
		{`42`, uuid.Nil, false},
		{`["` + s + `"]`, uuid.Nil, false},
		{`{}`, uuid.Nil, false},
		{`true`, uuid.Nil, false},
	} {
		var got struct {
			ID ids.CanonicalID `json:"id"`
		}
		err := json.Unmarshal([]byte(`{"id":`+tt.in+`}`), &got)
		if tt.ok != (err == nil) || got.ID.UUID() != tt.want {
			t.Errorf("%s: %v %v, want %v (ok %v)", tt.in, got.ID, err, tt.want, tt.ok)
		}
		if !tt.ok && !errors.Is(err, ids.ErrNotCanonical) {
			t.Errorf("%s: %v, want ErrNotCanonical", tt.in, err)
		}
	}
	out, err := json.Marshal(struct {
		ID ids.CanonicalID `json:"id"`
	}{ids.CanonicalID(id)})
	if err != nil || string(out) != `{"id":"`+s+`"}` {
		t.Errorf("encoded %s %v", out, err)
	}
}
