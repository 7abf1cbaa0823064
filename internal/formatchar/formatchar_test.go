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

// The variation selectors (U+FE00 to U+FE0F, U+E0100 to U+E01EF) and the
// Hangul fillers (U+115F, U+1160, U+3164, U+FFA0) show nothing of their own
// either: a name and an email refuse them as they refuse a Cf character,
// after an emoji too ("Ann ❤️" is refused; "Ann ❤" passes). Until
// 2026-12-08 they passed.
func TestVariationSelectorsAndHangulFillersAreRefused(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want rune
	}{
		{"Ann\ufe0f", 0xfe0f},
		{"Ann \u2764\ufe0f", 0xfe0f},
		{"A\ufe00nn", 0xfe00},
		{"\u845b\U000e0100", 0xe0100},
		{"A\U000e01efnn", 0xe01ef},
		{"\u3164", 0x3164},
		{"Ann\u3164", 0x3164},
		{"\u115f\u1160", 0x115f},
		{"A\u1160", 0x1160},
		{"\uffa0Ann", 0xffa0},
	} {
		if r, ok := formatchar.InName(tc.s); !ok || r != tc.want {
			t.Errorf("InName(%+q) = %U, %v; want %U refused", tc.s, r, ok, tc.want)
		}
		if r, ok := formatchar.Any(tc.s); !ok || r != tc.want {
			t.Errorf("Any(%+q) = %U, %v; want %U refused", tc.s, r, ok, tc.want)
		}
		if !formatchar.Invisible(tc.want) {
			t.Errorf("Invisible(%U) = false, want true", tc.want)
		}
	}
	for _, s := range []string{"Ann \u2764", "\ud55c\uae00", "\u1100\u1161"} {
		if r, ok := formatchar.InName(s); ok {
			t.Errorf("InName(%+q) refused %U, want accepted", s, r)
		}
	}
}

// A joiner after a virama joins only a letter or mark of the virama's own
// script: before a Latin letter ("क्" U+200D "A") it shows nothing and
// joins nothing. Until 2026-12-08 any letter or mark after it passed.
func TestAJoinerAfterAViramaWantsALetterOfItsScript(t *testing.T) {
	for _, s := range []string{"\u0915\u094d\u200dA", "\u0915\u094d\u200cA", "\u0915\u094d\u200d\u0baa", "\u0915\u094d\u200d\u0628", "\u0915\u094d\u200d\u0301"} {
		if r, ok := formatchar.InName(s); !ok {
			t.Errorf("InName(%+q) accepted, want the joiner refused", s)
		} else if r != 0x200c && r != 0x200d {
			t.Errorf("InName(%+q) refused %U, want the joiner", s, r)
		}
	}
	for _, s := range []string{"\u0915\u094d\u200d\u0937", "\u0b95\u0bcd\u200c\u0bb7", "\u0d15\u0d4d\u200d\u0d37"} {
		if r, ok := formatchar.InName(s); ok {
			t.Errorf("InName(%+q) refused %U, want accepted", s, r)
		}
	}
}
