// Package meili is the Meilisearch search backend, used instead of the
// embedded PostgreSQL one when MEILI_URL is configured. Writes wait for their
// Meilisearch task to succeed, so a search right after Upsert or Delete sees
// it, as with the embedded backend.
//
// It speaks the calls of Meilisearch's HTTP API (v1) it needs itself
// (PATCH settings, POST and DELETE documents, GET a task, POST a search, the
// last also with limit 0 to check a key: CheckKey; and, for the reindex
// command only, GET /version, CheckListingVersion, and GET documents' ids
// by filter: EachDocumentIDs, UnbucketedIDs), as
// meilisearch-go sent them: that client and its brotli encoder were linked
// into, and initialised in, every function of the multi-call binary for the
// two that search (docs/performance.md, "Memory (item 5)").
//
// The listing (EachDocumentIDs, UnbucketedIDs) needs Meilisearch v1.2 or
// later, the first whose GET /indexes/{uid}/documents takes a filter
// (Meilisearch's v1.2 release notes, "Get documents by filter"), so a
// caller checks the version first (CheckListingVersion: indexing.Reindex
// does, before it changes anything), then the listing itself
// (CheckListingFilter: the key may list, and the listing filters). When
// the key may not read the version, 1.0 and 1.1 still refuse the filter
// (400 bad_request, read in their source, not run); older ones are not
// verified.
package meili

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Config configures the adapter.
type Config struct {
	// URL of the Meilisearch server, e.g. http://meilisearch:7700. Required.
	URL string
	// APIKey is the key sent as bearer token: the writers' admin key of the
	// index (secret meili-key) or search-products' search-only key (secret
	// meili-search-key), never the master key; empty when the
	// server runs without one.
	APIKey string
	// IndexUID is the index holding products. Default "products".
	IndexUID string
	// HTTPClient is the client used; default one with a 5 s timeout over
	// telemetry.Client, so every call is a client span of the caller's trace
	// and carries its traceparent. One given here is used as it is.
	HTTPClient *http.Client
	// PollInterval is how often a write polls its task. Default 20 ms.
	PollInterval time.Duration
	// RetryDelay is the wait before the first retry of a request answered
	// 502, 503 or 504; the n-th of the three retries waits n times it.
	// Default one second (meilisearch-go's backoff).
	RetryDelay time.Duration
}

func (c *Config) setDefaults() {
	if c.IndexUID == "" {
		c.IndexUID = "products"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 5 * time.Second, Transport: telemetry.Client(nil)}
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 20 * time.Millisecond
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Second
	}
}

// Settings are the index settings the adapter uses, in the shape of
// Meilisearch's settings object (PATCH /indexes/{uid}/settings).
type Settings struct {
	RankingRules         []string   `json:"rankingRules"`
	SearchableAttributes []string   `json:"searchableAttributes"`
	FilterableAttributes []string   `json:"filterableAttributes"`
	SortableAttributes   []string   `json:"sortableAttributes"`
	Pagination           Pagination `json:"pagination"`
	Faceting             Faceting   `json:"faceting"`
}

// Pagination is the index's paging setting: MaxTotalHits caps the matches a
// search can page through (Meilisearch answers no hit past it, 1,000 by
// default) and the estimatedTotalHits it answers.
type Pagination struct {
	MaxTotalHits int `json:"maxTotalHits"`
}

// Faceting is the index's faceting setting: MaxValuesPerFacet caps how many
// values of one facet a search answers (Meilisearch's default is 100; past
// the cap it answers the first values in alphabetical order and drops the
// rest, counts and all).
type Faceting struct {
	MaxValuesPerFacet int `json:"maxValuesPerFacet"`
}

// MaxFacetValues is the faceting setting's cap: how many categories a
// search's facets can name. Categories are slugs an admin chooses, so no
// count is enforced anywhere; 1,000 is far beyond any shop's menu, where
// Meilisearch's default of 100 is not, and keeps an answer's facets under
// about 100 kB. The embedded PostgreSQL index answers every category.
const MaxFacetValues = 1000

// IndexSettings are what EnsureSettings applies. "sort" is the first ranking rule, so
// an explicit sort (price, popularity) is exact and relevance only breaks its
// ties; without a sort parameter the rule is inactive and relevance decides.
// id is sortable only to break ties deterministically. maxTotalHits lets a
// search page as deep as the API allows (search.MaxOffset + search.MaxLimit).
// bucket is filterable for the reindex's listing alone (EachDocumentIDs).
// maxValuesPerFacet lets facets count every category of the matches, up to
// MaxFacetValues. EnsureSettings PATCHes them all, so a deployment made
// before a setting was added gets it from its next writer or reindex.
func IndexSettings() Settings {
	return Settings{
		RankingRules:         []string{"sort", "words", "typo", "proximity", "attribute", "exactness"},
		SearchableAttributes: []string{"name", "description", "category", "sku"},
		FilterableAttributes: []string{"category", "price", "in_stock", "archived", "bucket"},
		SortableAttributes:   []string{"price", "sold_count", "id"},
		Pagination:           Pagination{MaxTotalHits: search.MaxOffset + search.MaxLimit},
		Faceting:             Faceting{MaxValuesPerFacet: MaxFacetValues},
	}
}

// Index is a Meilisearch index of products.
type Index struct {
	cfg  Config
	base string // URL without a trailing slash
}

var _ search.Index = (*Index)(nil)

// New returns the adapter; it does not contact the server.
func New(cfg Config) (*Index, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("meili: URL is required")
	}
	cfg.setDefaults()
	return &Index{cfg: cfg, base: strings.TrimRight(cfg.URL, "/")}, nil
}

// indexPath is the path of the index's resource rest (e.g. "/documents").
func (ix *Index) indexPath(rest string) string {
	return "/indexes/" + url.PathEscape(ix.cfg.IndexUID) + rest
}

// apiError is Meilisearch's error object.
type apiError struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Type    string `json:"type"`
}

// statusError is an answer of Meilisearch's other than the one a call
// wanted: its HTTP status, and its error object when it has one.
type statusError struct {
	status int
	apiError
}

func (e *statusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("status %d", e.status)
	}
	return fmt.Sprintf("status %d: %s (%s)", e.status, e.Message, e.Code)
}

// maxRetries is how many times a request answered 502, 503 or 504 is sent
// again (meilisearch-go's default).
const maxRetries = 3

// do sends one request (body, when not nil, as JSON) and decodes an answer
// of status want into out (when not nil). Any other status is an error with
// Meilisearch's message and code (a *statusError); 502, 503 and 504 are retried
// first.
func (ix *Index) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, ix.base+path, rd)
		if err != nil {
			return err
		}
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if ix.cfg.APIKey != "" {
			req.Header.Set("Authorization", "Bearer "+ix.cfg.APIKey)
		}
		res, err := ix.cfg.HTTPClient.Do(req)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
		res.Body.Close()
		if err != nil {
			return err
		}
		switch {
		case res.StatusCode == want:
			if out == nil {
				return nil
			}
			return json.Unmarshal(raw, out)
		case (res.StatusCode == http.StatusBadGateway || res.StatusCode == http.StatusServiceUnavailable ||
			res.StatusCode == http.StatusGatewayTimeout) && attempt < maxRetries:
			t := time.NewTimer(time.Duration(attempt+1) * ix.cfg.RetryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		e := &statusError{status: res.StatusCode}
		_ = json.Unmarshal(raw, &e.apiError)
		return e
	}
}

// document is the shape stored in Meilisearch: flat, so price is filterable
// and sortable as a number. Bucket (BucketOf the id) is there for the
// reindex's listing (EachDocumentIDs); a search never reads it.
type document struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Category    string `json:"category"`
	Price       int64  `json:"price"`
	Currency    string `json:"currency"`
	SoldCount   int64  `json:"sold_count"`
	InStock     bool   `json:"in_stock"`
	Archived    bool   `json:"archived"`
	Bucket      uint64 `json:"bucket"`
}

func toDocument(d search.Document) document {
	return document{ID: d.ID.String(), SKU: d.SKU, Name: d.Name, Description: d.Description, Category: d.Category,
		Price: d.Price.Amount, Currency: d.Price.Currency, SoldCount: d.SoldCount, InStock: d.InStock,
		Bucket: BucketOf(d.ID)}
}

// Buckets is how many buckets there are: every document the adapter pushes
// carries its bucket, BucketOf its id, a number below Buckets.
const Buckets = 1 << 48

// BucketOf is the bucket of the document of id: the id's last six bytes as
// a number (random bits in a UUIDv7 or v4, and different in ids that differ
// only at their end), below 2^53, so Meilisearch's numbers (64-bit floats)
// hold it exactly. It never changes for a document, whoever pushes it.
func BucketOf(id uuid.UUID) uint64 {
	var b [8]byte
	copy(b[2:], id[10:])
	return binary.BigEndian.Uint64(b[:])
}

func (d document) search() (search.Document, error) {
	id, err := uuid.Parse(d.ID)
	return search.Document{ID: id, SKU: d.SKU, Name: d.Name, Description: d.Description, Category: d.Category,
		Price: catalog.Money{Amount: d.Price, Currency: d.Currency}, SoldCount: d.SoldCount, InStock: d.InStock}, err
}

// taskInfo is the summarized task Meilisearch answers a write with (202).
type taskInfo struct {
	TaskUID int64 `json:"taskUid"`
}

// task is the part of GET /tasks/{uid}'s answer the adapter reads.
type task struct {
	Status string   `json:"status"`
	Error  apiError `json:"error"`
}

// taskError is a task that ended other than succeeded (failed, canceled):
// its status and Meilisearch's error object.
type taskError struct {
	what   string
	uid    int64
	status string
	apiError
}

func (e *taskError) Error() string {
	return fmt.Sprintf("meili: %s: task %d %s: %s", e.what, e.uid, e.status, e.Message)
}

// wait blocks until the task is done and reports a failed task as an error
// (a *taskError).
func (ix *Index) wait(ctx context.Context, what string, info taskInfo, err error) error {
	if err != nil {
		return fmt.Errorf("meili: %s: %w", what, err)
	}
	for {
		var t task
		if err := ix.do(ctx, http.MethodGet, "/tasks/"+strconv.FormatInt(info.TaskUID, 10), nil, http.StatusOK, &t); err != nil {
			return fmt.Errorf("meili: %s: task %d: %w", what, info.TaskUID, err)
		}
		switch t.Status {
		case "succeeded":
			return nil
		case "enqueued", "processing":
		default:
			return &taskError{what: what, uid: info.TaskUID, status: t.Status, apiError: t.Error}
		}
		timer := time.NewTimer(ix.cfg.PollInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("meili: %s: task %d: %w", what, info.TaskUID, ctx.Err())
		case <-timer.C:
		}
	}
}

// EnsureSettings creates the index if needed and applies Settings; applying
// the same settings again changes nothing.
func (ix *Index) EnsureSettings(ctx context.Context) error {
	var info taskInfo
	err := ix.do(ctx, http.MethodPatch, ix.indexPath("/settings"), IndexSettings(), http.StatusAccepted, &info)
	return ix.wait(ctx, "update settings", info, err)
}

// Upsert adds or replaces whole documents by id.
func (ix *Index) Upsert(ctx context.Context, docs ...search.Document) error {
	if len(docs) == 0 {
		return nil
	}
	out := make([]document, 0, len(docs))
	for _, d := range docs {
		out = append(out, toDocument(d))
	}
	var info taskInfo
	err := ix.do(ctx, http.MethodPost, ix.indexPath("/documents?primaryKey=id"), out, http.StatusAccepted, &info)
	return ix.wait(ctx, "add documents", info, err)
}

// Delete removes a document; a missing one is not an error, nor is a
// missing index. Meilisearch creates no index for a deletion: on an index
// that does not exist (no writer has built yet, or Meilisearch lost its
// data) it accepts the deletion (202) and fails its task with
// index_not_found (its scheduler's autobatcher lets only document additions
// and settings create an index; read in its source, not run). No index
// holds no document, so the deletion is done: were it an error, the push of
// every archive (index-product's delivery of its product.changed.v1) would
// fail until the index is back, and be dead-lettered. A writer's push that
// creates the index later reads the product again after it lands
// (catalogenv.Deps.Push), so an archived product does not come back.
func (ix *Index) Delete(ctx context.Context, id uuid.UUID) error {
	var info taskInfo
	err := ix.do(ctx, http.MethodDelete, ix.indexPath("/documents/"+id.String()), nil, http.StatusAccepted, &info)
	err = ix.wait(ctx, "delete document", info, err)
	if t, ok := errors.AsType[*taskError](err); ok && t.Code == "index_not_found" {
		return nil
	}
	return err
}

// maxSplit bounds how many spans EachDocumentIDs splits one span into.
const maxSplit = 4096

// MaxBucketIDs bounds how many ids EachDocumentIDs reads of one bucket it
// cannot split (ids that share their last six bytes), all held in memory
// at once: about 1.6 MB of ids, from an answer of about 4.5 MB (the adapter
// reads at most 64 MiB of one). A bucket holding more stops the walk with an
// error naming it, rather than asking for ever larger answers, whatever the
// batch (a batch above the bound, which the reindex's REINDEX_BATCH, 10,000
// at most, never is, does not raise it). UUIDv7 and v4 ids (48 random bits
// there) share a bucket by chance about never; only ids made otherwise
// fill one.
const MaxBucketIDs = 100_000

// MinListingVersion is the oldest Meilisearch the listing (EachDocumentIDs,
// UnbucketedIDs) may run against: v1.2, the first whose GET
// /indexes/{uid}/documents takes a filter (its release notes, "Get
// documents by filter"). 1.0 and 1.1 answer the filter 400 bad_request
// (an unknown parameter, read in their source, not run); what a 0.x one
// does with it is not verified: were it ignored, a span's listing would
// answer documents of every bucket.
const MinListingVersion = "1.2.0"

// ErrVersionRefused is CheckListingVersion's error for a Meilisearch older
// than MinListingVersion, or whose version it cannot parse, and
// CheckListingFilter's for one whose listing refuses or ignores a filter
// (worded as an unexpected answer, not an old server, when GET /version
// has just reported MinListingVersion or later).
var ErrVersionRefused = errors.New("meili: Meilisearch's version refused for the listing")

// ErrKeyLacksListing is CheckListingVersion's error when Meilisearch
// refuses the key GET /version and the document listing but answers it
// GET /tasks (tasks.get, which every meili-key was made with), and
// CheckListingFilter's when it refuses the listing but answers GET
// /tasks (whether or not GET /version answered), or refuses GET /tasks
// too after the key was just accepted: the key is genuine but lacks
// documents.get on the index (as one made before the release of
// 2026-12-06 does), or its indexes do not include the index (Meilisearch
// answers both 403 invalid_api_key). It does not wrap ErrKeyRefused: the
// key's value is right, its actions or indexes are not.
var ErrKeyLacksListing = errors.New("meili: the API key may not list the index's documents")

// ErrVersionUnchecked is CheckListingVersion's error when Meilisearch
// refused the key GET /version (401 or 403) but let it list the index's
// documents (a key without the "version" action, as keys made before it
// was asked for are): the version is unknown, not refused. A caller may go
// on, checking the listing's filter itself before it changes anything
// (CheckListingFilter): Meilisearch 1.0 and 1.1 answer the listing's
// filter parameter 400 bad_request ("Unknown parameter `filter`"; their
// GET documents' query struct denies unknown fields, read in v1.0.0's and
// v1.1.0's source, not run).
var ErrVersionUnchecked = errors.New(`meili: Meilisearch's version not checked: it refused the key GET /version, as it refuses a key without the "version" action`)

// CheckListingVersion reads Meilisearch's version (GET /version, the
// answer's pkgVersion: Meilisearch's package version, MAJOR.MINOR.PATCH,
// with -PRERELEASE or +BUILD at times) and returns nil when it is
// MinListingVersion or later, by semantic versioning's order: a
// pre-release precedes its release, so 1.2.0-rc.1 is refused and
// 1.3.0-rc.0 is not. An older version, or a pkgVersion that is none
// (missing, empty, "v1.2.0", "1.2"), is an error wrapping
// ErrVersionRefused and naming it. Meilisearch answers GET /version only
// to a key allowed its "version" action (or the master key), and answers
// 403 invalid_api_key to one that is not (401 to a request without a
// key), as it answers a key it does not have (403 invalid_api_key too):
// so a refused GET /version is followed by a read the key must be allowed
// anyway, GET /indexes/{uid}/documents?limit=0 (the listing's
// documents.get; read-only, no document read). Answered (or
// index_not_found: the key was accepted, the index is not there yet),
// the key lacks the version action alone: an error wrapping
// ErrVersionUnchecked and GET /version's answer. Refused too (401 or
// 403), a third read, GET /tasks?limit=1 (tasks.get, an action every
// meili-key has had), tells the two: answered, the key is genuine but
// lacks documents.get (made before the release of 2026-12-06), an error
// wrapping ErrKeyLacksListing; refused too, an error wrapping
// ErrKeyRefused; failed otherwise (the network, a 5xx after its retries,
// a cancelled context), an error wrapping that failure and none of them.
// Neither holds the key. Any other failed request (the network, a 5xx
// after its retries) is an error wrapping none of them.
func (ix *Index) CheckListingVersion(ctx context.Context) error {
	var v struct {
		PkgVersion *string `json:"pkgVersion"`
	}
	if err := ix.do(ctx, http.MethodGet, "/version", nil, http.StatusOK, &v); err != nil {
		if refused(err) {
			return ix.versionRefused(ctx, err)
		}
		return fmt.Errorf("meili: read the version (GET /version): %w", err)
	}
	if v.PkgVersion == nil || *v.PkgVersion == "" {
		return fmt.Errorf("%w: GET /version answered no pkgVersion", ErrVersionRefused)
	}
	raw := *v.PkgVersion
	if len(raw) > 64 {
		// Cut at a character's start, so the error stays valid UTF-8.
		cut := 64
		for cut > 0 && !utf8.RuneStart(raw[cut]) {
			cut--
		}
		raw = raw[:cut] + "…"
	}
	got, pre, ok := parseVersion(*v.PkgVersion)
	if !ok {
		return fmt.Errorf("%w: GET /version answered pkgVersion %q, not a version (MAJOR.MINOR.PATCH)", ErrVersionRefused, raw)
	}
	minimum, _, _ := parseVersion(MinListingVersion)
	if c := slices.Compare(got[:], minimum[:]); c < 0 || c == 0 && pre {
		return fmt.Errorf("%w: Meilisearch %s is older than %s, the first whose document listing takes a filter: upgrade it first",
			ErrVersionRefused, raw, MinListingVersion)
	}
	return nil
}

// refused reports whether err is Meilisearch's refusal of the key: 401 (no
// key sent) or 403 (a key it does not have, or one not allowed the call).
func refused(err error) bool {
	e, ok := errors.AsType[*statusError](err)
	return ok && (e.status == http.StatusUnauthorized || e.status == http.StatusForbidden)
}

// versionRefused tells, after GET /version refused the key (versionErr),
// a key without the "version" action from one Meilisearch refuses
// outright, by one read every key of the reindex must be allowed:
// CheckListingVersion's doc says what each answer returns.
func (ix *Index) versionRefused(ctx context.Context, versionErr error) error {
	err := ix.do(ctx, http.MethodGet, ix.indexPath("/documents?limit=0"), nil, http.StatusOK, nil)
	e, ok := errors.AsType[*statusError](err)
	switch {
	case err == nil, ok && e.Code == "index_not_found":
		return fmt.Errorf("%w (GET /version: %w)", ErrVersionUnchecked, versionErr)
	case refused(err):
		return ix.listingRefused(ctx, NotChecked, fmt.Sprintf("GET /version and GET /indexes/%s/documents", ix.cfg.IndexUID), err)
	}
	return fmt.Errorf("meili: list no document (GET /indexes/%s/documents?limit=0), after GET /version refused the key: %w", ix.cfg.IndexUID, err)
}

// listingRefused tells, after Meilisearch refused the key the document
// listing (listErr, 401 or 403; calls names what refused it), a genuine
// key that may not list this index from a wrong one, by a third read every
// meili-key was always allowed (GET /tasks?limit=1, tasks.get: the writers
// poll their tasks). Answered, it is an error wrapping ErrKeyLacksListing
// that names the index and both causes Meilisearch answers alike (403
// invalid_api_key): the key lacks documents.get (made before the release
// of 2026-12-06), or its indexes do not include this one (a key made for
// another index, or MEILI_INDEX set to another than the key's); refused
// too, one wrapping ErrKeyRefused, unless checked says Meilisearch
// accepted the key moments before (KeyAccepted, VersionChecked): then the
// key is genuine but lacks tasks.get as well as documents.get (or was
// deleted meanwhile), an error wrapping ErrKeyLacksListing, not a wrong
// value; failed otherwise (a 5xx after its retries, the network, a
// cancelled context: the key is not known to be refused), one wrapping
// that failure alone (listErr is printed, not wrapped, so nothing finds a
// refusal in it).
func (ix *Index) listingRefused(ctx context.Context, checked Checked, calls string, listErr error) error {
	uid := ix.cfg.IndexUID
	terr := ix.do(ctx, http.MethodGet, "/tasks?limit=1", nil, http.StatusOK, nil)
	if terr == nil {
		return fmt.Errorf("%w: %s refused it (%w), GET /tasks did not: "+
			"the key lacks the documents.get action on index %s (as one made before the release of 2026-12-06 does), "+
			"or its indexes do not include %s (a key made for another index): remake it with documents.get on %s "+
			"(docs/deploy-faasd.md step 7, item 7), or set MEILI_INDEX to the index the key was made for",
			ErrKeyLacksListing, calls, listErr, uid, uid, uid)
	}
	if refused(terr) && checked != NotChecked {
		return fmt.Errorf("%w: %s refused it, GET /tasks too (%v), though Meilisearch had just accepted the key (%s): "+
			"the key is genuine but lacks both the documents.get and tasks.get actions on index %s (or its indexes "+
			"do not include %s), or it was deleted meanwhile: remake it (docs/deploy-faasd.md step 7, item 7)",
			ErrKeyLacksListing, calls, terr, checked.accepted(), uid, uid)
	}
	if refused(terr) {
		return fmt.Errorf("%w: %s refused it, GET /tasks too (%w)", ErrKeyRefused, calls, terr)
	}
	return fmt.Errorf("meili: read no task (GET /tasks?limit=1), after %s refused the key (%v): %w", calls, listErr, terr)
}

// Checked is what the caller of CheckListingFilter learnt from
// CheckListingVersion, so that a failed check blames what is left: a key
// just accepted is not called wrong, and a server whose version was read
// is not told to upgrade.
type Checked int

const (
	// NotChecked: nothing is known, the key may be wrong and the server
	// of any version.
	NotChecked Checked = iota
	// KeyAccepted: Meilisearch accepted the key (CheckListingVersion
	// listed the documents and returned ErrVersionUnchecked); its
	// version is unknown.
	KeyAccepted
	// VersionChecked: GET /version answered the key MinListingVersion or
	// later (CheckListingVersion returned nil).
	VersionChecked
)

// accepted says which call accepted the key.
func (c Checked) accepted() string {
	if c == VersionChecked {
		return "GET /version answered it"
	}
	return "the version check listed the documents with it"
}

// CheckListingFilter checks that the key may list the index's documents
// and that the listing filters as EachDocumentIDs and UnbucketedIDs need:
// it lists with a filter no document matches ("bucket < 0", limit 1, one
// request). indexing.Reindex runs it before any change, whatever
// CheckListingVersion answered, and passes in checked what that check
// learnt: a key allowed GET /version but not documents.get passes that
// check, and would otherwise fail only at the listing after its pushes. A
// listing refused (401 or 403) is told as CheckListingVersion tells it, by
// GET /tasks?limit=1 (listingRefused): answered, an error wrapping
// ErrKeyLacksListing that names the index and both causes (no
// documents.get on it, or a key for other indexes); refused too, one
// wrapping ErrKeyRefused, or ErrKeyLacksListing when checked says the key
// was just accepted; failed otherwise, one wrapping that failure alone. A
// 400 other than invalid_document_filter (Meilisearch 1.0 and 1.1 answer
// the filter parameter bad_request, an unknown one) means the listing
// takes no filter, and a document in the answer that it ignored the
// filter (what a 0.x does with it is not verified): either is an error
// wrapping ErrVersionRefused, which says to upgrade Meilisearch unless
// checked is VersionChecked: a server that has just reported v1.2 or
// later is not told to upgrade, the error names the unexpected answer
// (its status and code, or the document) instead. It may run before
// EnsureSettings: a 400 invalid_document_filter (bucket not filterable
// yet, as before the settings or after an older writer's) shows that the
// server read the filter, and a 404 index_not_found (no index yet;
// Meilisearch checks the key before it looks for the index, read in its
// source, not run) that it has no document to answer: both pass, as no
// document answered does. Any other failure is an error wrapping none of
// them. An empty index (or one whose bucket is not filterable) answers no
// document either way: the check cannot see an ignored filter there, so
// Reindex, when the version is unchecked, checks again once its first
// batch is pushed.
func (ix *Index) CheckListingFilter(ctx context.Context, checked Checked) error {
	const filter = "bucket < 0"
	ids, _, err := ix.documentIDs(ctx, filter, 1)
	if refused(err) {
		return ix.listingRefused(ctx, checked, fmt.Sprintf("GET /indexes/%s/documents", ix.cfg.IndexUID), err)
	}
	if e, ok := errors.AsType[*statusError](err); ok && e.status == http.StatusBadRequest && e.Code != "invalid_document_filter" {
		if checked == VersionChecked {
			return fmt.Errorf("%w: an unexpected listing answer: GET /indexes/%s/documents with the filter %q answered %d %s (%w), "+
				"though GET /version reported Meilisearch %s or later, whose listing takes that filter",
				ErrVersionRefused, ix.cfg.IndexUID, filter, e.status, e.Code, err, MinListingVersion)
		}
		return fmt.Errorf("%w: its document listing refused the filter %q, as Meilisearch older than %s does: upgrade it first (%w)",
			ErrVersionRefused, filter, MinListingVersion, err)
	} else if ok && (e.Code == "invalid_document_filter" || e.Code == "index_not_found") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("meili: check the listing's filter: %w", err)
	}
	if len(ids) > 0 {
		if checked == VersionChecked {
			return fmt.Errorf("%w: an unexpected listing answer: GET /indexes/%s/documents with the filter %q answered 200 "+
				"with document %s, which the filter excludes, though GET /version reported Meilisearch %s or later, "+
				"whose listing applies that filter", ErrVersionRefused, ix.cfg.IndexUID, filter, ids[0], MinListingVersion)
		}
		return fmt.Errorf("%w: its document listing ignored the filter %q (it answered document %s), as no Meilisearch since %s does: upgrade it first",
			ErrVersionRefused, filter, ids[0], MinListingVersion)
	}
	return nil
}

// parseVersion parses a semantic version MAJOR.MINOR.PATCH, each a decimal
// number without a sign or leading zero, optionally followed by
// -PRERELEASE and +BUILD (not checked further), and reports whether it
// has a pre-release and whether s was one.
func parseVersion(s string) (v [3]int, pre, ok bool) {
	s, _, _ = strings.Cut(s, "+")
	s, suffix, pre := strings.Cut(s, "-")
	if pre && suffix == "" {
		return v, false, false
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false, false
	}
	for i, p := range parts {
		if p == "" || len(p) > 9 || len(p) > 1 && p[0] == '0' || strings.Trim(p, "0123456789") != "" {
			return v, false, false
		}
		v[i], _ = strconv.Atoi(p)
	}
	return v, pre, true
}

// EachDocumentIDs passes the ids of every document of the index that has a
// bucket to fn, at most batch ids a call, each id once, so that every such
// document that is in the index from the start of the walk to its end is
// passed, however many documents others add or delete meanwhile (fn
// included). It never pages with an offset (a document deleted ahead of
// the offset shifts the rest back, so one is skipped per deletion): it
// lists the documents of a span of buckets with one request (GET
// /indexes/{uid}/documents, filter "bucket >= lo AND bucket < hi",
// fields=id, limit batch+1; Meilisearch's documents.get action) and passes
// them when they are at most batch, all the span holds at that moment;
// otherwise it splits the span (into about twice the documents the answer
// counted, its total, divided by batch) and lists the parts, which no
// deletion or addition in another span can shift. The walk's memory is
// the stack of spans it still has to list, at most maxSplit per level of
// splitting. It needs bucket filterable (EnsureSettings); a document
// without a bucket (pushed by a release before buckets) is not listed:
// UnbucketedIDs. One bucket holding more than batch documents (ids that
// share their last six bytes, likely only with a tiny batch) cannot be
// split: all its ids are read by one request (limit max(total, batch)+1,
// asked again with a larger limit while an answer fills it) before they
// are passed to fn, batch a call, so what fn or a writer deletes in that
// bucket meanwhile shifts none of the others out of the walk; the walk
// then holds that bucket's ids in memory, at most MaxBucketIDs of them,
// whatever the batch: a bucket holding more is an error naming it, and
// none of its ids is passed. An error
// stops the walk: batch below 1, a failed request, an id not in the
// canonical form (as UnbucketedIDs), a bucket beyond that bound, or fn's.
func (ix *Index) EachDocumentIDs(ctx context.Context, batch int, fn func(ids []uuid.UUID) error) error {
	if batch < 1 {
		return fmt.Errorf("meili: a batch of %d documents", batch)
	}
	type span struct{ lo, hi uint64 }
	todo := []span{{0, Buckets}}
	for len(todo) > 0 {
		s := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		filter := fmt.Sprintf("bucket >= %d AND bucket < %d", s.lo, s.hi)
		ids, total, err := ix.documentIDs(ctx, filter, batch+1)
		if err != nil {
			return err
		}
		if len(ids) <= batch {
			if len(ids) > 0 {
				if err := fn(ids); err != nil {
					return err
				}
			}
			continue
		}
		width := s.hi - s.lo
		if width == 1 {
			if err := ix.eachOfBucket(ctx, s.lo, filter, total, batch, fn); err != nil {
				return err
			}
			continue
		}
		// total is only a hint of how many the span holds: a wrong one
		// costs requests, never a document.
		parts := uint64(min(max(2*total/batch, 2), maxSplit))
		parts = min(parts, width)
		step := (width + parts - 1) / parts
		// Pushed from the top, so the lowest span is listed first.
		for hi := s.hi; hi > s.lo; {
			lo := s.lo
			if hi-s.lo > step {
				lo = hi - step
			}
			todo = append(todo, span{lo, hi})
			hi = lo
		}
	}
	return nil
}

// eachOfBucket passes the ids of the documents filter (bucket, alone)
// matches to fn, batch ids a call, all read by one request before the first
// call: fn may delete what it is passed (reindex's removeStale does), which
// would shift the bucket's later documents back under an offset, one
// skipped per deletion. The request asks for max(total, batch)+1 ids
// (total: the count the bucket's first listing answered, a hint); an
// answer that fills its limit may have left some out, so it asks again
// with twice the limit (or the answer's total+1, if larger) until an
// answer does not. No limit goes past MaxBucketIDs+1: an answer that fills
// that one holds more than MaxBucketIDs ids, an error naming the bucket,
// before fn is called. The bound is fixed: a batch above it (the reindex
// caps REINDEX_BATCH at 10,000) raises no bound, so such a bucket is an
// error even when the batch could hold it.
func (ix *Index) eachOfBucket(ctx context.Context, bucket uint64, filter string, total, batch int, fn func(ids []uuid.UUID) error) error {
	const bound = MaxBucketIDs
	limit := min(max(total, batch)+1, bound+1)
	var ids []uuid.UUID
	for {
		var err error
		ids, total, err = ix.documentIDs(ctx, filter, limit)
		if err != nil {
			return err
		}
		if len(ids) < limit {
			break
		}
		if limit > bound {
			return fmt.Errorf("meili: bucket %d holds more than %d documents (ids sharing their last six bytes, %s among them), "+
				"more than the listing holds of one bucket at once (meili.MaxBucketIDs)", bucket, bound, ids[0])
		}
		limit = min(max(2*limit, total+1), bound+1)
	}
	for chunk := range slices.Chunk(ids, batch) {
		if err := fn(chunk); err != nil {
			return err
		}
	}
	return nil
}

// UnbucketedIDs returns the ids of up to limit documents without a bucket
// (filter "bucket NOT EXISTS"), which only a release before buckets
// pushed: a caller that lists them until none is left must push each again
// (with its bucket) or delete it, as EachDocumentIDs cannot list them. It
// needs bucket filterable (EnsureSettings); errors as EachDocumentIDs'.
func (ix *Index) UnbucketedIDs(ctx context.Context, limit int) ([]uuid.UUID, error) {
	ids, _, err := ix.documentIDs(ctx, "bucket NOT EXISTS", limit)
	return ids, err
}

// documentIDs returns the ids of the first limit documents that filter
// matches, in one request (GET /indexes/{uid}/documents with fields=id and
// filter, no offset), and the answer's total. An index that does not exist is an
// error (index_not_found); an id that is not a UUID in its canonical
// lowercase, dashed form (uuid.UUID.String), which no writer pushes, is an
// error naming it.
func (ix *Index) documentIDs(ctx context.Context, filter string, limit int) ([]uuid.UUID, int, error) {
	var page struct {
		Results []struct {
			ID any `json:"id"`
		} `json:"results"`
		Total int `json:"total"`
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}, "fields": {"id"}, "filter": {filter}}
	if err := ix.do(ctx, http.MethodGet, ix.indexPath("/documents?"+q.Encode()), nil, http.StatusOK, &page); err != nil {
		return nil, 0, fmt.Errorf("meili: get documents: %w", err)
	}
	ids := make([]uuid.UUID, 0, len(page.Results))
	for _, r := range page.Results {
		s, _ := r.ID.(string)
		// Only the canonical form (what the writers push, id.String()) is a
		// product id: Delete targets that form, so another spelling uuid.Parse
		// accepts (uppercase, no dashes) would survive a "successful" delete.
		id, err := uuid.Parse(s)
		if err != nil || id.String() != s {
			return nil, 0, fmt.Errorf("meili: get documents: id %v is not a product id", r.ID)
		}
		ids = append(ids, id)
	}
	return ids, page.Total, nil
}

// Filter is the Meilisearch filter expression for q's filters; archived
// documents are never found.
func Filter(q search.Query) string {
	parts := []string{"archived = false"}
	if q.Category != "" {
		parts = append(parts, "category = "+strconv.Quote(q.Category))
	}
	if q.MinPrice != nil {
		parts = append(parts, "price >= "+strconv.FormatInt(*q.MinPrice, 10))
	}
	if q.MaxPrice != nil {
		parts = append(parts, "price <= "+strconv.FormatInt(*q.MaxPrice, 10))
	}
	if q.InStock != nil {
		parts = append(parts, "in_stock = "+strconv.FormatBool(*q.InStock))
	}
	return strings.Join(parts, " AND ")
}

// searchRequest is the body of POST /indexes/{uid}/search.
type searchRequest struct {
	Query            string   `json:"q"`
	Offset           int      `json:"offset,omitempty"`
	Limit            int      `json:"limit,omitempty"`
	Filter           string   `json:"filter,omitempty"`
	Facets           []string `json:"facets,omitempty"`
	Sort             []string `json:"sort,omitempty"`
	MatchingStrategy string   `json:"matchingStrategy,omitempty"`
}

// searchResponse is the part of a search's answer the adapter reads.
type searchResponse struct {
	Hits               []document                `json:"hits"`
	EstimatedTotalHits int                       `json:"estimatedTotalHits"`
	FacetDistribution  map[string]map[string]int `json:"facetDistribution"`
}

// ErrKeyRefused is CheckKey's error when Meilisearch refuses the key: 401
// (missing_authorization_header: no key sent) or 403 (invalid_api_key: a key
// it does not have, or one not allowed to search the index),
// CheckListingVersion's when it refuses GET /version, the listing and GET
// /tasks, and CheckListingFilter's when it refuses the listing and GET
// /tasks to a key not accepted before (NotChecked).
var ErrKeyRefused = errors.New("meili: Meilisearch refused the API key")

// CheckTimeout bounds CheckKey, retries of a 502, 503 or 504 included: a
// Meilisearch that does not answer within it is not checked.
const CheckTimeout = 2 * time.Second

// CheckKey sends one search of the index with limit 0 (no hit is read) to
// learn whether Meilisearch accepts the key for searching, for a function
// that only searches and so sends nothing else as it builds. It returns nil
// when the search is answered or the index does not exist yet
// (index_not_found: a writer creates it as it builds, which may come
// later), an error wrapping ErrKeyRefused when Meilisearch refuses the key
// (401 or 403), and any other failure (Meilisearch not reached within
// CheckTimeout, another answer) as an error that is not ErrKeyRefused. The
// error never holds the key.
func (ix *Index) CheckKey(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	body := struct {
		Query string `json:"q"`
		Limit int    `json:"limit"`
	}{}
	err := ix.do(ctx, http.MethodPost, ix.indexPath("/search"), body, http.StatusOK, nil)
	e, ok := errors.AsType[*statusError](err)
	switch {
	case err == nil, ok && e.Code == "index_not_found":
		return nil
	case ok && (e.status == http.StatusUnauthorized || e.status == http.StatusForbidden):
		return fmt.Errorf("%w: %w", ErrKeyRefused, err)
	}
	return fmt.Errorf("meili: search with limit 0: %w", err)
}

// Search answers q. Every query term must match (matchingStrategy "all"),
// like the embedded backend: Meilisearch is sent search.Terms of q.Text, so
// it ignores the symbols, and the stop words beside another word, that the
// embedded backend ignores (it has no stop words of its own by default); a
// text of stop words alone is sent as they are, and one of symbols alone is an
// empty query. An index that does not exist (Meilisearch's
// index_not_found) is an error, as any refusal is: the writers create it as
// they build (EnsureSettings) and search-products' key may only search, so
// it means no writer has built yet or Meilisearch lost its data, and
// search-products answers 503 search_unavailable, never an empty result that
// would hide the loss.
func (ix *Index) Search(ctx context.Context, q search.Query) (search.Result, error) {
	req := searchRequest{
		Query: strings.Join(search.Terms(q.Text), " "), Limit: q.Limit, Offset: q.Offset, Filter: Filter(q),
		Facets: []string{"category"}, MatchingStrategy: "all",
	}
	switch q.Sort {
	case search.SortPriceAsc:
		req.Sort = []string{"price:asc", "id:desc"}
	case search.SortPriceDesc:
		req.Sort = []string{"price:desc", "id:desc"}
	case search.SortPopularity:
		req.Sort = []string{"sold_count:desc", "id:desc"}
	}
	res := search.Result{Hits: []search.Document{}, Facets: map[string]map[string]int{"category": {}}}
	var resp searchResponse
	if err := ix.do(ctx, http.MethodPost, ix.indexPath("/search"), req, http.StatusOK, &resp); err != nil {
		return res, fmt.Errorf("meili: search: %w", err)
	}
	for _, d := range resp.Hits {
		sd, err := d.search()
		if err != nil {
			return res, fmt.Errorf("meili: hit id %q: %w", d.ID, err)
		}
		res.Hits = append(res.Hits, sd)
	}
	res.Total = resp.EstimatedTotalHits
	for k, v := range resp.FacetDistribution["category"] {
		res.Facets["category"][k] = v
	}
	return res, nil
}
