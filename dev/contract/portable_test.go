package contract_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/internal/formatchar"
)

// TestEveryPatternIsPortable: every `pattern` of api/openapi.yaml is read
// alike by every client's engine. JSON Schema 2020-12 patterns are ECMA-262
// regular expressions that only SHOULD be compiled with the u flag: without
// it (ajv v6, `new RegExp(p)`), `\p{Z}` is a literal "p{Z}", and Python's re
// fails on it ("bad escape \p"); `\s`, `\d`, `\w`, `\b` differ between
// engines, lookarounds and inline flags are not in Go's, and Go reads no
// `\u` escape. So a pattern holds literal characters, classes and ranges
// of them, `\xHH` and escaped punctuation only (api/openapi.yaml writes a
// non-ASCII character as a `\uXXXX` escape of a double-quoted YAML string,
// which YAML turns into the character itself).
func TestEveryPatternIsPortable(t *testing.T) {
	var doc any
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	eachPattern(doc, "", func(where, p string) {
		n++
		if problem := unportable(p); problem != "" {
			t.Errorf("%s: the pattern %q %s", where, p, problem)
		}
		if _, err := regexp.Compile(p); err != nil {
			t.Errorf("%s: Go cannot read the pattern %q: %v", where, p, err)
		}
	})
	if n == 0 {
		t.Fatal("no pattern found in api/openapi.yaml: is the walk right?")
	}
	for _, p := range []string{`^\p{Z}*a$`, `[^\s]`, `\d+`, `(?i)a`, `a(?=b)`, `\u00e9`, `\bA`, `[[:alpha:]]`, `\x{e9}`, `\Qa\E`} {
		if unportable(p) == "" {
			t.Errorf("unportable(%q) finds nothing wrong", p)
		}
	}
}

// TestThePatternsSpacesAreTheCodesSpaces: the padding the patterns allow
// around a trimmed value (SKU) is exactly what the code trims
// (strings.TrimSpace: unicode.IsSpace) beyond the control characters the
// text rule refuses anyway: the 17 characters of Unicode's Z category.
func TestThePatternsSpacesAreTheCodesSpaces(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	sku := doc["components"].(map[string]any)["schemas"].(map[string]any)["SKU"].(map[string]any)["pattern"].(string)
	name := doc["components"].(map[string]any)["schemas"].(map[string]any)["ProductName"].(map[string]any)["pattern"].(string)
	padded, notSpace := regexp.MustCompile(sku), regexp.MustCompile(name)
	for r := rune(0); r <= unicode.MaxRune; r++ {
		space := unicode.IsSpace(r) && !unicode.IsControl(r)
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			space = true // a SKU's own character: the padded SKU is a longer one
		}
		if got := padded.MatchString(string(r) + "A-1" + string(r)); got != space {
			t.Errorf("SKU padded with %U: matched %v, want %v (unicode.IsSpace %v)", r, got, space, unicode.IsSpace(r))
		}
		if got := notSpace.MatchString(string(r)); got == unicode.IsSpace(r) {
			t.Errorf("ProductName of %U alone: matched %v, want %v (unicode.IsSpace %v)", r, got, !unicode.IsSpace(r), unicode.IsSpace(r))
		}
	}
}

// TestThePatternsFormatCharactersAreUnicodesCf: the patterns that refuse
// invisible formatting characters (a registration's name and email, a
// product's name) name exactly Unicode's Cf category up to U+FFFF, as the
// code (formatchar.Invisible, with the variation selectors and Hangul
// fillers) refuses it: "A" r "A" matches unless r is one; a shipping
// address's text (AddressText) has the product name's rule. In a
// name the joiners U+200C and U+200D pass where formatchar.InName lets them
// join: after a virama, or between letters of a joining script such as
// Arabic; never beside a Latin letter that precedes them, first, last,
// doubled or beside a space, digit or punctuation. A character of ASCII or
// Latin-1 before a joiner, or after a joiner that follows a virama, is
// judged by the pattern exactly as by the code; beyond Latin-1 the pattern
// cannot name every script's viramas and joining letters, so it never
// refuses what the code accepts. Beyond U+FFFF a pattern without the u flag
// reads a character as two halves, so those (the tag characters) are said
// in the descriptions only. An email holds no Cf character, joiners
// included.
func TestThePatternsFormatCharactersAreUnicodesCf(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	registration := schemas["Registration"].(map[string]any)["properties"].(map[string]any)
	allOf, _ := schemas["ProductName"].(map[string]any)["allOf"].([]any)
	if len(allOf) == 0 {
		t.Fatal("ProductName has no allOf whose pattern refuses the Cf characters")
	}
	if got, want := schemas["AddressText"].(map[string]any)["pattern"], allOf[0].(map[string]any)["pattern"]; got != want {
		t.Errorf("AddressText's pattern is not ProductName's rule:\n%v\nwant\n%v", got, want)
	}
	email := regexp.MustCompile(registration["email"].(map[string]any)["pattern"].(string))
	for what, p := range map[string]string{"Registration.name": registration["name"].(map[string]any)["pattern"].(string), "ProductName": allOf[0].(map[string]any)["pattern"].(string)} {
		re := regexp.MustCompile(p)
		for r := rune(0x20); r <= 0xffff; r++ {
			if r >= 0xd800 && r <= 0xdfff {
				continue // halves of a pair, no character of their own
			}
			if got, want := re.MatchString("A"+string(r)+"A"), !formatchar.Invisible(r); got != want {
				t.Errorf("%s of A%UA: matched %v, want %v (formatchar.Invisible %v)", what, r, got, want, formatchar.Invisible(r))
			}
			// r before a non-joiner and an Arabic letter, before a joiner
			// and a Devanagari letter, and after a virama and a joiner.
			for _, s := range []string{string(r) + "\u200c\u0628", string(r) + "\u200d\u0915", "\u0915\u094d\u200d" + string(r)} {
				_, refused := formatchar.InName(s)
				switch got := re.MatchString(s); {
				case got && refused && r <= 0xff:
					t.Errorf("%s of %+q matched, but the code refuses it", what, s)
				case !got && !refused:
					t.Errorf("%s of %+q did not match, but the code accepts it", what, s)
				}
			}
		}
		for _, s := range []string{"\u200c", "\u200dA", "A\u200c", "A\u200cA", "Ad\u200dmin", "\u00e9\u200c\u00df", "a\u200cb\u200dc d\u200ce", "A\u200c\u200cA", "A\u200d\u200cA", "A \u200cA", "A\u200c A", "A\u200c1", "A.\u200dB", "\u0645\u06cc\u200c\u200c\u062e", "\u0645\u06cc\u200c", "\u0915\u094d\u200d"} {
			if re.MatchString(s) {
				t.Errorf("%s of %+q matched, want refused", what, s)
			}
		}
		for _, s := range []string{"\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0915\u094d\u200d\u0937", "\u0915\u094d\u200d\u0937\u200c\u0915 Ann", "Ann \u0646\u0627\u0645\u200c\u0647\u0627"} {
			if !re.MatchString(s) {
				t.Errorf("%s of %+q did not match, want accepted", what, s)
			}
		}
	}
	for r := rune(0x80); r <= 0xffff; r++ {
		if r >= 0xd800 && r <= 0xdfff || unicode.IsSpace(r) || r <= 0x9f {
			continue
		}
		want := !formatchar.Invisible(r) && r != 0x037e
		if got := email.MatchString("a" + string(r) + "b@example.com"); got != want {
			t.Errorf("Registration.email with %U in the local part: matched %v, want %v (formatchar.Invisible %v)", r, got, want, formatchar.Invisible(r))
		}
	}
}

// eachPattern calls f with every value of a "pattern" key under v, and
// where it is.
func eachPattern(v any, where string, f func(where, p string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			if p, ok := sub.(string); ok && k == "pattern" {
				f(where, p)
				continue
			}
			eachPattern(sub, where+"/"+k, f)
		}
	case []any:
		for i, sub := range x {
			eachPattern(sub, fmt.Sprintf("%s/%d", where, i), f)
		}
	}
}

// unportable says why p is outside the portable subset, or "".
func unportable(p string) string {
	if strings.Contains(p, "(?") {
		return "has an inline flag, a lookaround or a named group: not in every engine"
	}
	if strings.Contains(p, "[:") {
		return "has a POSIX class: not in ECMA-262"
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '\\' {
			continue
		}
		if i+1 == len(p) {
			return "ends with a lone backslash"
		}
		c := p[i+1]
		switch {
		case c == 'x':
			if i+3 >= len(p) || !isHex(p[i+2]) || !isHex(p[i+3]) {
				return `has \x without two hex digits (Go's \x{…} is not ECMA-262)`
			}
			i += 3
		case strings.IndexByte(`\^$.|?*+()[]{}/-`, c) >= 0:
			i++
		default:
			return fmt.Sprintf(`has the escape \%c, which engines read differently (\p and \P need the u flag, Go reads no \u; write the characters out)`, c)
		}
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
