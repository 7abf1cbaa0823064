// Package formatchar finds the invisible formatting characters (Unicode
// category Cf) a name must not hold: shown, they are nothing or reorder
// their neighbours, so a name holding one looks like another.
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

// InName returns the first Cf character of s that a name must not hold.
// Every Cf character is refused but the two joiners where IDNA's ContextJ
// rules (RFC 5892, appendix A.1 and A.2) let them join, as Persian and Indic
// names need them ("می‌خواهم", "क्‍ष"): either joiner right after a virama
// (a mark of canonical combining class 9) and before a letter or mark, and a
// non-joiner between two letters or marks of a script whose letters join
// (Arabic, Syriac and the like: a simple form of A.1's joining types, which
// needs no table of them). Nowhere else: never first, last, doubled, beside a
// space, digit or punctuation, nor between Latin letters, where a joiner
// shows nothing and would make "Ad‍min" look like "Admin".
func InName(s string) (rune, bool) {
	rs := []rune(s)
	for i, r := range rs {
		if !unicode.Is(unicode.Cf, r) {
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
		return true
	}
	return r == nonJoiner && joining(prev) && joining(next)
}

// virama reports whether r is a virama: canonical combining class 9.
func virama(r rune) bool { return norm.NFC.PropertiesString(string(r)).CCC() == 9 }

// joiningScripts are the scripts whose letters join their neighbours (RFC
// 5892 A.1's joining types L, D, R are theirs).
var joiningScripts = []*unicode.RangeTable{
	unicode.Arabic, unicode.Syriac, unicode.Nko, unicode.Mongolian, unicode.Phags_Pa,
	unicode.Manichaean, unicode.Psalter_Pahlavi, unicode.Sogdian, unicode.Hanifi_Rohingya, unicode.Adlam,
}

// joining reports whether r is a letter or mark of a joining script.
func joining(r rune) bool { return letterOrMark(r) && unicode.In(r, joiningScripts...) }

// Any returns the first Cf character of s, joiners included: an email holds
// none. Unicode's composition (NFC) neither makes nor removes one, so the
// form as sent decides.
func Any(s string) (rune, bool) {
	for _, r := range s {
		if unicode.Is(unicode.Cf, r) {
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
		return fmt.Sprintf("%s must not contain the invisible formatting character %U but after a virama or between two letters of a joining script such as Arabic (Unicode category Cf)", field, r)
	}
	return fmt.Sprintf("%s must not contain the invisible formatting character %U (Unicode category Cf: zero-width and bidi controls)", field, r)
}
