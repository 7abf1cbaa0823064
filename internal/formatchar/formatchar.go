// Package formatchar finds the invisible formatting characters (Unicode
// category Cf) a name must not hold: shown, they are nothing or reorder
// their neighbours, so a name holding one looks like another.
package formatchar

import (
	"fmt"
	"unicode"
)

// Joiners, ZERO WIDTH NON-JOINER (U+200C) and ZERO WIDTH JOINER (U+200D).
const (
	nonJoiner = '\u200c'
	joiner    = '\u200d'
)

// InName returns the first Cf character of s that a name must not hold.
// Every Cf character is refused but the two joiners where they join letters,
// as Persian and Indic names need them ("می‌خواهم"): a simple form of IDNA's
// ContextJ rules (RFC 5892, appendix A.1 and A.2), which a name of any
// script can follow without tables of joining types. A joiner must be
// preceded by a letter or combining mark and followed by one, so it is never
// first, last, doubled, or next to a space, digit or punctuation.
func InName(s string) (rune, bool) {
	rs := []rune(s)
	for i, r := range rs {
		if !unicode.Is(unicode.Cf, r) {
			continue
		}
		if (r == nonJoiner || r == joiner) && i > 0 && i < len(rs)-1 && letterOrMark(rs[i-1]) && letterOrMark(rs[i+1]) {
			continue
		}
		return r, true
	}
	return 0, false
}

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
		return fmt.Sprintf("%s must not contain the invisible formatting character %U but between two letters or marks (Unicode category Cf)", field, r)
	}
	return fmt.Sprintf("%s must not contain the invisible formatting character %U (Unicode category Cf: zero-width and bidi controls)", field, r)
}
