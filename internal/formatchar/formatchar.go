// Package formatchar finds the invisible characters a name or an email must
// not hold: the formatting characters (Unicode category Cf), the variation
// selectors and the Hangul fillers. Shown, they are nothing or reorder their
// neighbours, so a name holding one looks like another.
package formatchar

import (
	"fmt"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Joiners, ZERO WIDTH NON-JOINER (U+200C) and ZERO WIDTH JOINER (U+200D).
const (
	nonJoiner = '\u200c'
	joiner    = '\u200d'
)

// Invisible reports whether r shows nothing of its own: a Cf character
// (joiners included), a variation selector (U+FE00 to U+FE0F, U+E0100 to
// U+E01EF: marks, category Mn, that only choose a glyph of the character
// before them) or a Hangul filler (U+115F, U+1160, U+3164, U+FFA0: letters,
// category Lo, that show blank). A variation selector after an emoji
// (U+FE0F, emoji presentation) is refused too: the emoji shows without it,
// and names refuse the joiner of an emoji sequence already (until 2026-12-08
// the selectors and fillers passed). Mongolian's free variation selectors
// (U+180B to U+180D, U+180F) are left to the script that needs them.
func Invisible(r rune) bool {
	return unicode.Is(unicode.Cf, r) || variationSelector(r) || hangulFiller(r)
}

func variationSelector(r rune) bool {
	return r >= 0xfe00 && r <= 0xfe0f || r >= 0xe0100 && r <= 0xe01ef
}

func hangulFiller(r rune) bool { return r == 0x115f || r == 0x1160 || r == 0x3164 || r == 0xffa0 }

// InName returns the first character of s that a name must not hold, one
// Invisible reports. Every one is refused but the two joiners where IDNA's
// ContextJ rules (RFC 5892, appendix A.1 and A.2) let them join, as Persian
// and Indic names need them ("می‌خواهم", "क्‍ष"): either joiner right after
// a virama (a mark of canonical combining class 9) and before a letter or
// mark of the virama's script (A.2 asks only for the virama; until
// 2026-12-08 any letter passed, and "क्" U+200D "A" shows as "क्A"), and a
// non-joiner between two letters or marks of a script whose letters join
// (Arabic, Syriac and the like: a simple form of A.1's joining types, which
// needs no table of them). Nowhere else: never first, last, doubled, beside a
// space, digit or punctuation, nor between Latin letters, where a joiner
// shows nothing and would make "Ad‍min" look like "Admin".
func InName(s string) (rune, bool) {
	rs := []rune(s)
	for i, r := range rs {
		if !Invisible(r) {
			continue
		}
		if (r == nonJoiner || r == joiner) && i > 0 && i < len(rs)-1 && joins(r, rs[i-1], rs[i+1]) {
			continue
		}
		return r, true
	}
	return 0, false
}

// joins reports whether joiner r may stand between prev and next.
func joins(r, prev, next rune) bool {
	if !letterOrMark(next) {
		return false
	}
	if virama(prev) {
		return sameScript(prev, next)
	}
	return r == nonJoiner && joining(prev) && joining(next)
}

// virama reports whether r is a virama: canonical combining class 9.
func virama(r rune) bool { return norm.NFC.PropertiesString(string(r)).CCC() == 9 }

// sameScript reports whether a and b belong to one script (a character
// belongs to exactly one, Common and Inherited included).
func sameScript(a, b rune) bool {
	for _, t := range unicode.Scripts {
		if unicode.Is(t, a) {
			return unicode.Is(t, b)
		}
	}
	return false
}

// joiningScripts are the scripts whose letters join their neighbours (RFC
// 5892 A.1's joining types L, D, R are theirs).
var joiningScripts = []*unicode.RangeTable{
	unicode.Arabic, unicode.Syriac, unicode.Nko, unicode.Mongolian, unicode.Phags_Pa,
	unicode.Manichaean, unicode.Psalter_Pahlavi, unicode.Sogdian, unicode.Hanifi_Rohingya, unicode.Adlam,
}

// joining reports whether r is a letter or mark of a joining script.
func joining(r rune) bool { return letterOrMark(r) && unicode.In(r, joiningScripts...) }

// Any returns the first character of s that Invisible reports, joiners
// included: an email holds none. Unicode's composition (NFC) neither makes
// nor removes one, so the form as sent decides.
func Any(s string) (rune, bool) {
	for _, r := range s {
		if Invisible(r) {
			return r, true
		}
	}
	return 0, false
}

func letterOrMark(r rune) bool { return unicode.IsLetter(r) || unicode.IsMark(r) }

// Problem is the message refusing field for holding r, a character InName or
// Any found. It names the character's code point, never the value.
func Problem(field string, r rune) string {
	if r == nonJoiner || r == joiner {
		return fmt.Sprintf("%s must not contain the invisible formatting character %U but after a virama and before a letter of its script, or between two letters of a joining script such as Arabic (Unicode category Cf)", field, r)
	}
	if variationSelector(r) {
		return fmt.Sprintf("%s must not contain the invisible variation selector %U (after an emoji too)", field, r)
	}
	if hangulFiller(r) {
		return fmt.Sprintf("%s must not contain the invisible Hangul filler %U", field, r)
	}
	return fmt.Sprintf("%s must not contain the invisible formatting character %U (Unicode category Cf: zero-width and bidi controls)", field, r)
}
