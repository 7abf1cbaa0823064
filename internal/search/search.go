// Package search is the product search contract: the Index every backend
// implements (pgsearch, the embedded PostgreSQL default, and meili, the
// Meilisearch adapter), the query a client may ask and its validation. It does
// no I/O. Every backend passes the same behaviour suite (searchtest).
package search

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/fault"
)

// Document is what the index holds for one live (not archived) product; hits
// are documents, in the product's JSON shape.
type Document struct {
	ID          uuid.UUID     `json:"id"`
	SKU         string        `json:"sku"`
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Category    string        `json:"category"`
	Price       catalog.Money `json:"price"`
	SoldCount   int64         `json:"sold_count"`
	InStock     bool          `json:"in_stock"`
}

// FromProduct is the search document of p.
func FromProduct(p catalog.Product) Document {
	return Document{ID: p.ID, SKU: p.SKU, Name: p.Name, Description: p.Description, Category: p.Category,
		Price: p.Price, SoldCount: p.SoldCount, InStock: p.InStock}
}

// Sort orders of a search.
const (
	SortRelevance  = "relevance"
	SortPriceAsc   = "price_asc"
	SortPriceDesc  = "price_desc"
	SortPopularity = "popularity" // sold_count, highest first
)

// Query limits.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	MaxOffset    = 10_000
	MaxText      = 200
	// MaxTerms is how many of a query's Terms a search uses: the first
	// ten, the rest ignored. Meilisearch's hard limit (its "Known
	// limitations": words after the tenth are ignored), which the embedded
	// backend keeps too, so both answer alike and a 200-character q of
	// short words is ten conditions there, not seventy.
	MaxTerms = 10
)

// Query is a validated search. Text matches name, description, category and
// sku, every one of its first MaxTerms Terms required (the terms after
// the tenth are ignored, in both backends), each exactly, by stem or with a typo; symbols are no terms,
// nor are stop words beside another word, and a Text without terms matches
// as an empty one. Nil pointers
// mean "no filter". Under an explicit sort (price, popularity) ties break by
// id, newest first, in every backend, so paging over unchanged data is
// stable (a sort key that changes between two pages, such as sold_count, can
// move a product across them). Under relevance the order is the backend's:
// the embedded index breaks ties by sold_count, then id (so with empty Text,
// where every product ranks alike, sold_count decides); Meilisearch gets no
// sort, which would override its relevance, and orders ties its own way.
type Query struct {
	Text     string
	Category string
	MinPrice *int64
	MaxPrice *int64
	InStock  *bool
	Sort     string
	Limit    int
	Offset   int
}

// Result is one page of hits, the total number of matching documents and the
// category facet over all of them (with every filter applied).
type Result struct {
	Hits   []Document                `json:"hits"`
	Total  int                       `json:"total"`
	Facets map[string]map[string]int `json:"facets"`
}

// Index is a search backend. Upsert and Delete are idempotent and visible to
// the next Search when they return (read-your-writes); EnsureSettings is
// idempotent and called once at start.
type Index interface {
	Upsert(ctx context.Context, docs ...Document) error
	Delete(ctx context.Context, id uuid.UUID) error
	Search(ctx context.Context, q Query) (Result, error)
	EnsureSettings(ctx context.Context) error
}

// Words splits text into its lower-case words: runs of letters, digits,
// combining marks and hyphens ("usb-c", "café"); anything else separates
// them, punctuation and symbols included ("—", "€", the "’" of "speaker’s").
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !(r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r))
	})
}

// Terms are the words of text a backend must all match, each once, in the
// order they first appear: Words, with hyphens trimmed from their ends,
// without the words that hold no letter or digit (a lone "-", "—", "€") and,
// when any other word remains, without the English stop words (IsStopWord):
// "speaker for the garden" asks for "speaker garden", since PostgreSQL's
// english configuration holds no stop word in a document's vector. A text of
// stop words alone ("the who", "it") keeps them: they are what it asks for,
// and match, as any word, a product holding them ("The Who", a sku "IT"; the
// embedded backend finds them in name, category and sku, by the simple
// configuration and the trigram words). Every backend searches these, so they
// agree on what a query asks; Meilisearch is sent the terms alone. No terms (a
// text of symbols only, "—") is an empty query: every product matches.
func Terms(text string) []string {
	var words, stop []string
	for _, w := range Words(text) {
		w = strings.Trim(w, "-")
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue
		}
		into := &words
		if IsStopWord(w) {
			into = &stop
		}
		if !slices.Contains(*into, w) {
			*into = append(*into, w)
		}
	}
	if len(words) == 0 {
		return stop
	}
	return words
}

// IsStopWord reports whether w (lower case) is one of the English stop
// words, which no query needs a product to contain: PostgreSQL's english
// text-search configuration's list (tsearch_data/english.stop, the Snowball
// project's English list), which its full-text vectors leave out. A test in
// pgsearch holds the two lists equal.
func IsStopWord(w string) bool {
	_, ok := stopWords[w]
	return ok
}

// StopWords returns the English stop words IsStopWord knows, sorted.
func StopWords() []string {
	return slices.Sorted(maps.Keys(stopWords))
}

var stopWords = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, w := range strings.Fields(`i me my myself we our ours ourselves you your yours yourself yourselves
		he him his himself she her hers herself it its itself they them their theirs themselves what which who
		whom this that these those am is are was were be been being have has had having do does did doing a an
		the and but if or because as until while of at by for with about against between into through during
		before after above below to from up down in out on off over under again further then once here there
		when where why how all any both each few more most other some such no nor not only own same so than too
		very s t can will just don should now`) {
		m[w] = struct{}{}
	}
	return m
}()

func invalid(format string, args ...any) error {
	return fault.E(fault.Invalid, fault.CodeInvalidRequest, fmt.Sprintf(format, args...))
}

// ParseQuery validates the query string of GET /search/products. Every bad
// value is fault.Invalid (422) with code invalid_request.
func ParseQuery(v url.Values) (Query, error) {
	q := Query{Text: strings.TrimSpace(v.Get("q")), Category: v.Get("category"), Sort: v.Get("sort"),
		Limit: DefaultLimit}
	// Counted as sent, as the contract's maxLength counts it; searched trimmed.
	if utf8.RuneCountInString(v.Get("q")) > MaxText {
		return q, invalid("q must be at most %d characters as sent (surrounding spaces count)", MaxText)
	}
	if err := catalog.ValidateCategory(q.Category); err != nil {
		return q, err
	}
	price := func(name string) (*int64, error) {
		raw := v.Get(name)
		if raw == "" {
			return nil, nil
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 || n > catalog.MaxPrice {
			return nil, invalid("%s must be an integer amount in minor units from 0 to %d", name, catalog.MaxPrice)
		}
		return &n, nil
	}
	var err error
	if q.MinPrice, err = price("min_price"); err != nil {
		return q, err
	}
	if q.MaxPrice, err = price("max_price"); err != nil {
		return q, err
	}
	if q.MinPrice != nil && q.MaxPrice != nil && *q.MinPrice > *q.MaxPrice {
		return q, invalid("min_price must not exceed max_price")
	}
	// Only the contract's spellings: strconv.ParseBool would also take
	// 1, t, TRUE and the like, which the OpenAPI document's boolean does not.
	switch raw := v.Get("in_stock"); raw {
	case "":
	case "true", "false":
		b := raw == "true"
		q.InStock = &b
	default:
		return q, invalid("in_stock must be true or false")
	}
	switch q.Sort {
	case "":
		q.Sort = SortRelevance
	case SortRelevance, SortPriceAsc, SortPriceDesc, SortPopularity:
	default:
		return q, invalid("sort must be one of relevance, price_asc, price_desc, popularity")
	}
	if q.Limit, err = intParam(v, "limit", DefaultLimit, 1, MaxLimit); err != nil {
		return q, err
	}
	if q.Offset, err = intParam(v, "offset", 0, 0, MaxOffset); err != nil {
		return q, err
	}
	return q, nil
}

func intParam(v url.Values, name string, def, min, max int) (int, error) {
	raw := v.Get(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < min || n > max {
		return 0, invalid("%s must be an integer from %d to %d", name, min, max)
	}
	return n, nil
}
