package fnhttp

import (
	"net/http"
	"slices"
	"strings"

	"github.com/shopfaas/shop/internal/fault"
)

// IfMatch is a request's If-Match field as RFC 9110 §13.1.1 defines it:
// "*", or a comma-separated list of entity tags, whose field lines together
// make one list. The zero value is a request without If-Match.
type IfMatch struct {
	sent  bool     // the request has an If-Match field line, empty or not
	any   bool     // "*"
	tags  []string // its strong entity tags, quotes included; nil when the field is malformed
	noTag bool     // sent, and malformed or listing no entity tag at all
}

// ErrIfMatchNamesNoTag is the answer (412) to a write whose If-Match was sent
// empty or malformed (IfMatch.NamesNoTag): it matches nothing, and saying the
// resource changed would send the client to read it again for nothing.
var ErrIfMatchNamesNoTag = fault.E(fault.PreconditionFailed, fault.CodePreconditionFailed,
	"If-Match names no entity tag (it is empty or malformed): send the ETag the resource was read with, or *")

// ParseIfMatch reads r's If-Match field. A field that is neither "*" nor a
// list of entity tags (`"…"` or `W/"…"`; "*" inside a list, an unquoted or
// unterminated tag, two tags without a comma between them, anything after a
// tag) is kept as sent but matches nothing, as a tag that names no version
// would. So does a field sent empty, or holding only whitespace and commas:
// #entity-tag allows a list of no tags, and it names no version. The request
// made its write conditional by sending If-Match; reading an empty field as
// not sent would make that write unconditional.
func ParseIfMatch(r *http.Request) IfMatch {
	lines := r.Header.Values("If-Match")
	if len(lines) == 0 {
		return IfMatch{}
	}
	field := strings.Trim(strings.Join(lines, ","), " \t")
	if field == "*" {
		return IfMatch{sent: true, any: true}
	}
	tags, ok := entityTags(field)
	if !ok {
		tags = nil
	}
	// A valid tag, weak or strong, is quoted.
	return IfMatch{sent: true, tags: tags, noTag: !ok || !strings.Contains(field, `"`)}
}

// NamesNoTag reports whether If-Match was sent empty, holding only
// whitespace and commas, or malformed: it matches nothing, for a reason other
// than a version that changed (ErrIfMatchNamesNoTag).
func (m IfMatch) NamesNoTag() bool { return m.noTag }

// Sent reports whether the request sent If-Match.
func (m IfMatch) Sent() bool { return m.sent }

// Matches reports whether the precondition holds for a resource that exists
// with the entity tag current: it does when If-Match was not sent, when it is
// "*", or when it lists current, by the strong comparison (RFC 9110 §8.8.3.2):
// both tags strong and the same character for character. A weak tag (W/…)
// never matches, nor does a tag that merely holds current or is held by it.
// For a resource that does not exist the caller decides: "*" must then fail.
func (m IfMatch) Matches(current string) bool {
	if !m.sent || m.any {
		return true
	}
	return !strings.HasPrefix(current, "W/") && slices.Contains(m.tags, current)
}

// entityTags parses a list of entity tags (RFC 9110 §5.6.1 and §8.8.3):
//
//	#entity-tag, entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE
//
// with empty elements and optional whitespace around the commas allowed. It
// answers the strong tags, quotes included (a weak one can never match
// strongly), and false when the list is malformed.
func entityTags(list string) ([]string, bool) {
	var tags []string
	afterTag := false // a tag was read and no comma has followed it yet
	for i := 0; i < len(list); {
		switch c := list[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == ',':
			afterTag = false
			i++
		case afterTag:
			return nil, false
		default:
			weak := strings.HasPrefix(list[i:], "W/")
			if weak {
				i += 2
			}
			if i == len(list) || list[i] != '"' {
				return nil, false
			}
			end := i + 1
			for end < len(list) && etagc(list[end]) {
				end++
			}
			if end == len(list) || list[end] != '"' {
				return nil, false
			}
			if !weak {
				tags = append(tags, list[i:end+1])
			}
			i, afterTag = end+1, true
		}
	}
	return tags, true
}

// etagc reports whether c may stand inside an opaque tag: any visible
// character but DQUOTE, or obs-text.
func etagc(c byte) bool { return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80 }
