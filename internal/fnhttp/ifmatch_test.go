package fnhttp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/fnhttp"
)

// ifMatch is the If-Match of a request with those field lines.
func ifMatch(lines ...string) fnhttp.IfMatch {
	r := httptest.NewRequest(http.MethodPatch, "/x", nil)
	for _, l := range lines {
		r.Header.Add("If-Match", l)
	}
	return fnhttp.ParseIfMatch(r)
}

// If-Match holds for the current tag only as RFC 9110 §13.1.1 says: not
// sent, "*", or a well-formed list that holds the tag itself, strong. A field
// sent with no tag in it (empty, whitespace, commas) is an empty list: the
// request is conditional and the condition holds for no tag.
// An If-Match that names no tag (empty, or malformed) is told apart from one
// naming another version, so the 412 can say why.
func TestIfMatchSaysWhenItNamesNoTag(t *testing.T) {
	for _, c := range []struct {
		lines []string
		noTag bool
	}{
		{nil, false},
		{[]string{""}, true},
		{[]string{" , ,\t"}, true},
		{[]string{"", ""}, true},
		{[]string{`p-7`}, true},
		{[]string{"*, " + `"p-7"`}, true},
		{[]string{`"p-7`}, true},
		{[]string{"*"}, false},
		{[]string{`"a"`}, false},
		{[]string{`W/"a"`}, false},
		{[]string{`"a", W/"b"`}, false},
	} {
		r := httptest.NewRequest(http.MethodPut, "/", nil)
		for _, l := range c.lines {
			r.Header.Add("If-Match", l)
		}
		if got := fnhttp.ParseIfMatch(r).NamesNoTag(); got != c.noTag {
			t.Errorf("If-Match %q: names no tag %v, want %v", c.lines, got, c.noTag)
		}
	}
}

func TestIfMatchHoldsOnlyForTheTagItself(t *testing.T) {
	const cur = `"p-7"`
	for _, c := range []struct {
		lines []string
		sent  bool
		holds bool
	}{
		{nil, false, true},
		{[]string{""}, true, false}, // an empty list: sent, and it names no tag
		{[]string{" \t"}, true, false},
		{[]string{"", ""}, true, false},
		{[]string{" , ,\t"}, true, false},
		{[]string{cur}, true, true},
		{[]string{" " + cur + "\t"}, true, true},
		{[]string{"*"}, true, true},
		{[]string{" * "}, true, true},
		{[]string{`"a",` + cur}, true, true},
		{[]string{`"a" ,` + cur + `, "b"`}, true, true},
		{[]string{`, ,` + cur + `,,`}, true, true}, // empty list elements are allowed
		{[]string{`"a"`, cur}, true, true},         // two field lines, one list
		{[]string{`"a,b"`, cur}, true, true},       // a comma inside a tag
		{[]string{`W/"a"`, cur}, true, true},
		{[]string{"\"\x80\xff\", " + cur}, true, true}, // obs-text
		{[]string{","}, true, false},
		{[]string{`"a"`}, true, false},
		{[]string{`"p-70"`}, true, false},
		{[]string{`"p-"`}, true, false},
		{[]string{`"p-7`}, true, false},
		{[]string{`p-7`}, true, false},
		{[]string{`W/` + cur}, true, false},
		{[]string{`w/` + cur}, true, false},
		{[]string{`W/ ` + cur}, true, false},
		{[]string{`"a", W/` + cur}, true, false},
		{[]string{cur + `x`}, true, false},
		{[]string{`x` + cur}, true, false},
		{[]string{`"` + cur + `"`}, true, false},
		{[]string{cur + ` "a"`}, true, false},
		{[]string{cur + `"a"`}, true, false},
		{[]string{`"p 7"`}, true, false},
		{[]string{`"*"`}, true, false},
		{[]string{"*, " + cur}, true, false},
		{[]string{"*", cur}, true, false},
		{[]string{"*", "*"}, true, false},
		{[]string{`W/"a, ` + cur}, true, false}, // split at the comma, the tail would match
	} {
		m := ifMatch(c.lines...)
		if m.Sent() != c.sent || m.Matches(cur) != c.holds {
			t.Errorf("If-Match %q: sent %t, matches %s %t; want %t, %t", c.lines, m.Sent(), cur, m.Matches(cur), c.sent, c.holds)
		}
	}
	if ifMatch(`W/"p-7"`).Matches(`W/"p-7"`) {
		t.Error("a weak tag matched a weak current tag; the strong comparison never matches a weak one")
	}
}

// FuzzParseIfMatch: any If-Match field parses without a panic and counts as
// sent, whatever it holds; when it matches a tag, it is "*" or holds that
// tag; a weak tag added to a list never changes its answer.
func FuzzParseIfMatch(f *testing.F) {
	for _, s := range []string{
		`"p-7"`, `*`, `W/"p-7"`, `"a", "p-7"`, `"p-7"x`, `"a, "p-7"`, `W/"a, "p-7"`, `,,`, `"`, `W/`, "\"\x80\"", `"p-7" "a"`,
		``, ` `, "\t", ` , ,`, `*, "p-7"`, `"a,b", "p-7"`,
	} {
		f.Add(s, "p-7")
	}
	f.Fuzz(func(t *testing.T, field, opaque string) {
		cur := `"` + strings.Map(func(r rune) rune {
			if r == '"' || r <= ' ' || r == 0x7f {
				return -1
			}
			return r
		}, opaque) + `"`
		m := ifMatch(field)
		if !m.Sent() {
			t.Fatalf("If-Match %q was sent, but Sent is false: the write would be unconditional", field)
		}
		trimmed := strings.Trim(field, " \t")
		if m.Matches(cur) && trimmed != "*" && !strings.Contains(field, cur) {
			t.Fatalf("If-Match %q matched %s, which it does not hold", field, cur)
		}
		if trimmed == "*" {
			return
		}
		if weak := ifMatch(field + ", W/" + cur); weak.Matches(cur) != m.Matches(cur) {
			t.Fatalf("If-Match %q matches %s: %t, but with a weak tag of it added: %t", field, cur, m.Matches(cur), weak.Matches(cur))
		}
	})
}
