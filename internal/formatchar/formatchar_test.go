package formatchar_test

import (
	"testing"

	"github.com/shopfaas/shop/internal/formatchar"
)

// A joiner passes in a name after a virama, and a non-joiner between letters
// of a joining script; anywhere else (between Latin letters too), and every
// other Cf character, is refused, as in an email every Cf character is.
func TestJoinersPassOnlyWhereTheyJoin(t *testing.T) {
	for _, s := range []string{
		"می\u200cخواهم",       // Persian, ZWNJ between letters
		"क्\u200dष",           // Devanagari, ZWJ after a virama (a mark)
		"\u0915\u094d\u200cष", // ZWNJ after a virama
		"ܐ\u200cܒ",            // Syriac, ZWNJ between letters
		"Ann",
	} {
		if r, ok := formatchar.InName(s); ok {
			t.Errorf("InName(%+q) refused %U, want accepted", s, r)
		}
		if _, ok := formatchar.Any(s); ok != (s != "Ann") {
			t.Errorf("Any(%+q) = %v, want every joiner refused", s, ok)
		}
	}
	for _, tc := range []struct {
		s    string
		want rune
	}{
		{"\u200c", 0x200c},                // alone
		{"\u200cمی", 0x200c},              // first
		{"می\u200d", 0x200d},              // last
		{"می\u200c\u200cخواهم", 0x200c},   // doubled
		{"می\u200c\u200dخواهم", 0x200c},   // one of each
		{"می \u200cخواهم", 0x200c},        // after a space
		{"A\u200d1", 0x200d},              // before a digit
		{"A\u200d!", 0x200d},              // before punctuation
		{"La\u200bmp", 0x200b},            // other Cf characters stay refused
		{"Ann\u202e", 0x202e},             // a bidi override
		{"می\u200cخ\U000e0041ا", 0xe0041}, // a tag character after a joiner that passes
		{"Ad\u200dmin", 0x200d},           // between Latin letters: shows nothing
		{"A\u200cnn", 0x200c},
		{"Mu\u200dg", 0x200d},
		{"é\u200cß", 0x200c},
		{"क\u200dष", 0x200d},  // Devanagari letters, no virama before
		{"ی\u200dخ", 0x200d},  // a joiner between Arabic letters: not after a virama
		{"ی\u200cA", 0x200c},  // a non-joiner from Arabic to Latin
		{"क्\u200d1", 0x200d}, // after a virama, before a digit
	} {
		if r, ok := formatchar.InName(tc.s); !ok || r != tc.want {
			t.Errorf("InName(%+q) = %U, %v; want %U refused", tc.s, r, ok, tc.want)
		}
	}
}
