package inventory

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/shopfaas/shop/internal/fault"
)

// ETag is the stock level's strong entity tag, "stock-<product_id>-<version>"
// quoted: it changes with every change of the row (the version a trigger
// bumps), whoever made it — set-stock, a reservation, the sweep's sale, a
// cancel's restock. The product id in it keeps one product's tag from ever
// matching another's, and the prefix keeps the product's own ETag
// ("<product_id>-<version>", of the catalog's version) from matching the
// level when the two versions happen to be equal.
func (s Stock) ETag() string {
	return `"stock-` + s.ProductID.String() + "-" + strconv.FormatInt(s.Version, 10) + `"`
}

// Precondition is what a set-stock expects of the stock row it overwrites,
// from the request's If-Match and If-None-Match: on_hand is an absolute
// level, decided on a level the administrator read, and the row also moves
// without them (reservations, the sweep selling confirmed holds, restocks),
// so a write is only made on the version it was decided on.
//
// The zero value expects nothing and is refused (fault.PreconditionRequired):
// a blind overwrite is never made by forgetting the precondition.
type Precondition struct {
	match  IfMatchField // If-Match, nil when not sent: the row must exist and match it
	absent bool         // If-None-Match: * — the row must not exist yet
}

// IfMatchField is a request's If-Match field as the HTTP layer reads it
// (fnhttp.IfMatch, RFC 9110 §13.1.1): whether the request sent it, and
// whether it holds for a row whose strong entity tag is etag — "*" holds for
// any, a list of entity tags when it names etag exactly (a weak tag never
// does), a malformed field for none. The domain reads no header itself, so
// set-stock and update-product read If-Match the same way.
type IfMatchField interface {
	Sent() bool
	Matches(etag string) bool
}

// IfMatch expects the row at one of the versions the entity tags name
// (If-Match: the ETag get-stock answered). A tag that is weak, malformed or
// another product's matches nothing, and so does an empty list.
func IfMatch(etags ...string) Precondition { return Precondition{match: tagList(etags)} }

// IfExists expects the row to exist, at whatever version (If-Match: *): a
// deliberate overwrite of the current level, whatever it is, never for a
// level decided on one that was read. Only tests build it: set-stock reads
// a request's If-Match: * through its IfMatchField.
func IfExists() Precondition { return Precondition{match: anyTag{}} }

// IfAbsent expects the product never to have been stocked (If-None-Match: *):
// the first stock level, which get-stock cannot give an ETag for (404).
func IfAbsent() Precondition { return Precondition{absent: true} }

// tagList is IfMatch's list: strong comparison, so only the tag itself.
type tagList []string

func (tagList) Sent() bool                 { return true }
func (l tagList) Matches(etag string) bool { return slices.Contains(l, etag) }

// anyTag is If-Match: *.
type anyTag struct{}

func (anyTag) Sent() bool          { return true }
func (anyTag) Matches(string) bool { return true }

// ParsePrecondition makes the precondition of a request from its If-Match,
// as read by the HTTP layer (fnhttp.ParseIfMatch; nil counts as not sent),
// and the lines of its If-None-Match field (nil when not sent), which may
// only be "*" (fault.Invalid otherwise, a field sent empty included: a
// write that succeeds when the row is NOT at some version protects nothing).
// Neither header is fault.PreconditionRequired "precondition_required"
// (428). Both may be sent; the pair then can never hold (412), as HTTP
// evaluates it.
func ParsePrecondition(ifMatch IfMatchField, ifNoneMatch []string) (Precondition, error) {
	var p Precondition
	if ifMatch != nil && ifMatch.Sent() {
		p.match = ifMatch
	}
	if ifNoneMatch != nil {
		if strings.TrimSpace(strings.Join(ifNoneMatch, ",")) != "*" {
			return Precondition{}, fault.E(fault.Invalid, fault.CodeInvalidRequest,
				"If-None-Match may only be * (to stock a product for the first time)")
		}
		p.absent = true
	}
	if !p.given() {
		return p, errPreconditionRequired
	}
	return p, nil
}

var errPreconditionRequired = fault.E(fault.PreconditionRequired, fault.CodePreconditionRequired,
	"send If-Match with the ETag of get-stock (or If-None-Match: * to stock a product for the first time)")

func (p Precondition) given() bool { return p.match != nil || p.absent }

// Check decides whether the write may proceed on cur, the row as it is now
// (locked), exists false when the product was never stocked. It returns nil,
// fault.PreconditionRequired for the zero Precondition, or
// fault.PreconditionFailed "precondition_failed" (412) naming the current
// version and ETag, so the administrator reads the level again before
// deciding.
func (p Precondition) Check(cur Stock, exists bool) error {
	if !p.given() {
		return errPreconditionRequired
	}
	if p.match != nil && !exists {
		return fault.E(fault.PreconditionFailed, fault.CodePreconditionFailed,
			"the product was never stocked: stock it with If-None-Match: *")
	}
	if p.absent && exists {
		return stale(cur, "the product is already stocked")
	}
	if p.match != nil && !p.match.Matches(cur.ETag()) {
		return stale(cur, "the stock level changed since it was read")
	}
	return nil
}

func stale(cur Stock, what string) error {
	return fault.E(fault.PreconditionFailed, fault.CodePreconditionFailed, fmt.Sprintf(
		"%s: it is now at version %d (ETag %s, on_hand %d, reserved %d); read it again and decide on that",
		what, cur.Version, cur.ETag(), cur.OnHand, cur.Reserved))
}
