// Package catalog is the product catalog's domain: what a product is, which
// values are valid, how a partial update (JSON merge semantics) applies, and the
// opaque list cursor. It does no I/O; the store is catalog/catalogdb.
package catalog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/formatchar"
	"github.com/shopfaas/shop/internal/ids"
)

// Limits of the product fields. They are part of the API contract.
const (
	MaxName        = 200
	MaxDescription = 5000
	MaxCategory    = 64
	MinPrice       = 1
	MaxPrice       = 100_000_000
	// DefaultCurrency is used when a new product's price names no currency.
	DefaultCurrency = "USD"
)

var (
	skuPattern      = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{2,31}$`)
	categoryPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// Money is an amount in integer minor units of an ISO 4217 currency; never a
// float.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Product is a catalog entry as the API shows it. Version grows by one with
// every change and drives the cache and the ETag; SoldCount and InStock are
// maintained by the order and inventory events, never by an admin write.
type Product struct {
	ID          uuid.UUID `json:"id"`
	SKU         string    `json:"sku"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Category    string    `json:"category"`
	Price       Money     `json:"price"`
	SoldCount   int64     `json:"sold_count"`
	InStock     bool      `json:"in_stock"`
	Archived    bool      `json:"archived"`
	Version     int64     `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Draft is the body of POST /products. Price amount is an integer: a float
// fails decoding with a 400.
type Draft struct {
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description" text:"multiline"`
	Category    string `json:"category"`
	Price       Money  `json:"price"`
}

// stored is t as the database keeps it (timestamptz: microseconds, UTC), so
// a write answers the times a read of the same version gives: one ETag, one
// body.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// NewProduct validates d and returns the product to store, with a fresh
// UUIDv7 id, version 1, not archived and not in stock (inventory says when it
// is). Every problem is fault.Invalid with code invalid_request.
func NewProduct(d Draft, now time.Time) (Product, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Product{}, fault.Internalf("product id: %w", err)
	}
	p := Product{
		ID: id, SKU: NormalizeSKU(d.SKU), Name: strings.TrimSpace(d.Name),
		Description: strings.TrimSpace(d.Description), Category: strings.TrimSpace(d.Category),
		Price: d.Price, Version: 1, CreatedAt: stored(now), UpdatedAt: stored(now),
	}
	if p.Price.Currency == "" {
		p.Price.Currency = DefaultCurrency
	}
	if err := checkSent(d.Name, d.Description); err != nil {
		return p, err
	}
	return p, p.Validate()
}

// NormalizeSKU is a SKU as it is stored and looked up: trimmed, its ASCII
// letters upper-cased (upperASCII).
func NormalizeSKU(sku string) string { return upperASCII(strings.TrimSpace(sku)) }

// upperASCII upper-cases a SKU's ASCII letters only. strings.ToUpper also
// maps letters beyond ASCII onto ASCII ones ("ſ" to "S", "ı" to "I"), so a
// SKU the contract's pattern (ASCII letters in either case) refuses would be
// stored as another, valid one; left as sent, such a letter fails skuPattern.
// It is the pattern checked case-insensitively on the value as sent.
func upperASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r - ('a' - 'A')
		}
		return r
	}, s)
}

// checkSent refuses a name or description longer than its maximum as sent,
// before it is trimmed: the contract's maxLength counts the padding too, so a
// client that validates against the document and the function agree on every
// value. Validate counts what is stored (trimmed) for the rest.
//
// It also refuses the invisible characters sent in them (a patch checks only
// the fields it sets, so a product stored before the rule can still be
// changed in another): any formatting character (Unicode category Cf:
// U+200B, U+FEFF, the bidi controls) in a name, where one makes two products
// look alike, but a zero-width non-joiner or joiner between letters or marks,
// which Persian and Indic names need (formatchar.InName; until 2026-12-08
// refused too), and in a description the bidi embeddings, overrides
// and isolates (U+202A to U+202E, U+2066 to U+2069), which reorder the text
// shown after them; a description keeps the other Cf characters (a
// zero-width joiner in an emoji, a non-joiner in Persian). Until 2026-12-08
// both passed.
func checkSent(name, description string) error {
	var problems []string
	if utf8.RuneCountInString(name) > MaxName {
		problems = append(problems, fmt.Sprintf("name must be at most %d characters as sent (surrounding spaces count)", MaxName))
	}
	if r, ok := formatchar.InName(name); ok {
		problems = append(problems, formatchar.Problem("name", r))
	}
	if utf8.RuneCountInString(description) > MaxDescription {
		problems = append(problems, fmt.Sprintf("description must be at most %d characters as sent (surrounding spaces count)", MaxDescription))
	}
	if i := strings.IndexFunc(description, bidiControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(description[i:])
		problems = append(problems, fmt.Sprintf("description must not contain the bidi control %U (embeddings, overrides and isolates, U+202A to U+202E and U+2066 to U+2069)", r))
	}
	if len(problems) > 0 {
		return fault.E(fault.Invalid, fault.CodeInvalidRequest, strings.Join(problems, "; "))
	}
	return nil
}

// bidiControl reports whether r is a bidi embedding, override or isolate
// (or their terminators): U+202A to U+202E, U+2066 to U+2069.
func bidiControl(r rune) bool { return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 }

// Validate checks every admin-writable field.
func (p Product) Validate() error {
	var problems []string
	if !skuPattern.MatchString(p.SKU) {
		problems = append(problems, "sku must be 3 to 32 characters of A-Z, 0-9 and -")
	}
	if n := utf8.RuneCountInString(p.Name); n < 1 || n > MaxName {
		problems = append(problems, fmt.Sprintf("name must be 1 to %d characters", MaxName))
	}
	if utf8.RuneCountInString(p.Description) > MaxDescription {
		problems = append(problems, fmt.Sprintf("description must be at most %d characters", MaxDescription))
	}
	if err := ValidateCategory(p.Category); err != nil || p.Category == "" {
		problems = append(problems, "category must be a slug such as home-audio")
	}
	if p.Price.Amount < MinPrice || p.Price.Amount > MaxPrice {
		problems = append(problems, fmt.Sprintf("price.amount must be an integer from %d to %d (minor units)", MinPrice, MaxPrice))
	}
	if !currencyPattern.MatchString(p.Price.Currency) {
		problems = append(problems, "price.currency must be an ISO 4217 code such as USD")
	}
	if len(problems) > 0 {
		return fault.E(fault.Invalid, fault.CodeInvalidRequest, strings.Join(problems, "; "))
	}
	return nil
}

// ValidateCategory checks a category filter or field: empty, or a slug.
func ValidateCategory(c string) error {
	if c == "" {
		return nil
	}
	if len(c) > MaxCategory || !categoryPattern.MatchString(c) {
		return fault.E(fault.Invalid, fault.CodeInvalidRequest, "category must be a slug such as home-audio")
	}
	return nil
}

// Optional is one field of a merge patch: Set when the key was present, Null
// when its value was JSON null.
type Optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// JSONShape is the type an Optional decodes its JSON into, whose field
// names its keys must match exactly (fnhttp.JSONShaper).
func (Optional[T]) JSONShape() any { return (*T)(nil) }

// UnmarshalJSON records presence; encoding/json calls it only for keys that
// appear in the body, including for null.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(&o.Value)
}

// PricePatch is the price member of a Patch: each present member replaces the
// stored one (merge semantics one level down).
type PricePatch struct {
	Amount   Optional[int64]  `json:"amount"`
	Currency Optional[string] `json:"currency"`
}

// Patch is the body of PATCH /products/{id} with JSON merge patch (RFC 7396)
// semantics: absent keys keep their value; null clears description and is
// refused for the fields a product cannot lack.
type Patch struct {
	SKU         Optional[string]     `json:"sku"`
	Name        Optional[string]     `json:"name"`
	Description Optional[string]     `json:"description" text:"multiline"`
	Category    Optional[string]     `json:"category"`
	Price       Optional[PricePatch] `json:"price"`
}

// Empty reports whether the patch changes nothing.
func (pt Patch) Empty() bool {
	return !pt.SKU.Set && !pt.Name.Set && !pt.Description.Set && !pt.Category.Set && !pt.Price.Set
}

// Apply returns p changed by pt, validated, with the version bumped and
// UpdatedAt set. An archived product cannot be changed (fault.NotFound, as it
// no longer exists for the API).
func Apply(p Product, pt Patch, now time.Time) (Product, error) {
	if p.Archived {
		return p, fault.E(fault.NotFound, fault.CodeNotFound, "no such product")
	}
	if pt.Empty() {
		return p, fault.E(fault.Invalid, fault.CodeInvalidRequest, "the patch changes nothing")
	}
	if err := checkSent(pt.Name.Value, pt.Description.Value); err != nil {
		return p, err
	}
	var nulls []string
	str := func(name string, f Optional[string], dst *string, upper bool) {
		switch {
		case !f.Set:
		case f.Null:
			nulls = append(nulls, name)
		default:
			*dst = strings.TrimSpace(f.Value)
			if upper {
				*dst = upperASCII(*dst)
			}
		}
	}
	str("sku", pt.SKU, &p.SKU, true)
	str("name", pt.Name, &p.Name, false)
	str("category", pt.Category, &p.Category, false)
	if pt.Description.Set {
		p.Description = strings.TrimSpace(pt.Description.Value) // null clears it
	}
	if pt.Price.Set {
		if pt.Price.Null {
			nulls = append(nulls, "price")
		} else {
			pp := pt.Price.Value
			if !pp.Amount.Set && !pp.Currency.Set {
				// Merge semantics would read {} as "keep the price", but a
				// client that sends it almost surely meant to change it, and
				// the version would be bumped for nothing; the contract says
				// so (minProperties: 1).
				return p, fault.E(fault.Invalid, fault.CodeInvalidRequest, "price must hold amount, currency or both")
			}
			if pp.Amount.Set {
				if pp.Amount.Null {
					nulls = append(nulls, "price.amount")
				}
				p.Price.Amount = pp.Amount.Value
			}
			// As sent, not trimmed as str does, and as NewProduct takes it:
			// "usd" is refused on both writes (the contract's pattern).
			switch c := pp.Currency; {
			case !c.Set:
			case c.Null:
				nulls = append(nulls, "price.currency")
			default:
				p.Price.Currency = c.Value
			}
		}
	}
	if len(nulls) > 0 {
		return p, fault.E(fault.Invalid, fault.CodeInvalidRequest, strings.Join(nulls, ", ")+" cannot be null")
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	p.Version++
	p.UpdatedAt = stored(now)
	return p, nil
}

// Archive returns p archived, version bumped. Archiving twice is NotFound: the
// product no longer exists for the API.
func Archive(p Product, now time.Time) (Product, error) {
	if p.Archived {
		return p, fault.E(fault.NotFound, fault.CodeNotFound, "no such product")
	}
	p.Archived = true
	p.Version++
	p.UpdatedAt = stored(now)
	return p, nil
}

// ETag is the product's strong entity tag: it changes with every version.
func (p Product) ETag() string {
	return fmt.Sprintf(`"%s-%d"`, p.ID, p.Version)
}

// Lists are ordered newest first by id: UUIDv7 ids grow with creation time, so
// the order is stable and a cursor is simply the last id seen.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	cursorPrefix = "p1:"
)

// EncodeCursor makes the opaque cursor that continues a list after id.
func EncodeCursor(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id.String()))
}

// DecodeCursor parses a cursor as EncodeCursor writes it; an empty cursor is
// the start (uuid.Nil). Anything else is fault.Invalid with code
// invalid_cursor, a cursor EncodeCursor would not write included: one that
// decodes to another spelling of an id (uuid.Parse also reads upper case, 32
// hex digits, braces and urn:uuid:). The cursor carries no proof of its
// origin: the encoding of any id is read, one no page returned included, as
// the place after which the list goes on.
func DecodeCursor(s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, nil
	}
	bad := fault.E(fault.Invalid, fault.CodeInvalidCursor, "cursor is not written as this list writes one")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(raw), cursorPrefix) {
		return uuid.Nil, bad
	}
	id, ok := ids.Exact(strings.TrimPrefix(string(raw), cursorPrefix))
	if !ok || EncodeCursor(id) != s {
		return uuid.Nil, bad
	}
	return id, nil
}
