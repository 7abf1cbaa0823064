package fntest

import "strings"

// IfMatchCase is one If-Match field sent with a conditional write (RFC 9110
// §13.1.1, as fnhttp.ParseIfMatch reads it), made from the resource's current
// strong entity tag, which ends in -1" (its first version).
type IfMatchCase struct {
	Name  string
	Lines func(etag string) []string // the field's lines
	Holds bool                       // the write is made; otherwise 412 and nothing written
	NoTag bool                       // its 412 says the field names no entity tag (empty or malformed)
}

// IfMatchCases are the If-Match fields every conditional write must judge
// alike (update-product, set-stock): the current tag, "*" and lists holding
// it; weak, malformed and other tags; and fields sent empty, which make the
// write conditional all the same and match nothing.
func IfMatchCases() []IfMatchCase {
	return []IfMatchCase{
		{"exact", func(e string) []string { return []string{e} }, true, false},
		{"star", func(string) []string { return []string{"*"} }, true, false},
		{"list holding it", func(e string) []string { return []string{`"other", ` + e + ` ,"third"`} }, true, false},
		{"second line holding it", func(e string) []string { return []string{`"other"`, e} }, true, false},
		{"a comma inside another tag", func(e string) []string { return []string{`"a,b", ` + e} }, true, false},
		{"weak", func(e string) []string { return []string{"W/" + e} }, false, false},
		{"weak in a list", func(e string) []string { return []string{`"other", W/` + e} }, false, false},
		{"held by it", func(e string) []string { return []string{strings.TrimSuffix(e, `-1"`) + `"`} }, false, false},
		{"quoted star", func(string) []string { return []string{`"*"`} }, false, false},
		{"another version", func(e string) []string { return []string{strings.Replace(e, `-1"`, `-2"`, 1)} }, false, false},
		{"inside a weak tag's quotes", func(e string) []string { return []string{`W/"a, ` + e} }, false, true},
		{"inside a tag's quotes", func(e string) []string { return []string{`"a, ` + e} }, false, true},
		{"star in a list", func(e string) []string { return []string{"*, " + e} }, false, true},
		{"star and a tag on two lines", func(e string) []string { return []string{"*", e} }, false, true},
		{"two tags without a comma", func(e string) []string { return []string{e + ` "other"`} }, false, true},
		{"holding it, then more", func(e string) []string { return []string{e + `x`} }, false, true},
		{"holding it, quoted again", func(e string) []string { return []string{`"` + e + `"`} }, false, true},
		{"unquoted", func(e string) []string { return []string{strings.Trim(e, `"`)} }, false, true},
		// Sent, but naming no tag: an empty list, which matches nothing.
		{"empty", func(string) []string { return []string{""} }, false, true},
		{"whitespace", func(string) []string { return []string{" \t"} }, false, true},
		{"two empty lines", func(string) []string { return []string{"", ""} }, false, true},
		{"only commas", func(string) []string { return []string{" , ,"} }, false, true},
	}
}
