// Package meilitest is a FAKE OF A THIRD PARTY: a small in-memory HTTP
// server that follows Meilisearch's documented HTTP API (v1.x) for exactly
// what the shop uses, because no Meilisearch can run on these machines. It
// is written from the public API reference, not from Meilisearch's code, and
// shared by the adapter's tests (internal/search/meili) and the reindex
// command's (cmd/reindex):
//   - POST /indexes/{uid}/documents[?primaryKey=] adds or replaces documents,
//     PUT the same path merges them, DELETE /indexes/{uid}/documents/{id};
//     each answers 202 with a summarized task {taskUid, indexUid, status:
//     "enqueued", type, enqueuedAt}. A deletion creates no index: on an
//     index that does not exist its task fails with index_not_found, as in
//     Meilisearch, whose scheduler lets only document additions and
//     settings updates create one (its autobatcher; read, not run).
//   - GET /indexes/{uid}/documents?offset=&limit=&fields=&filter= answers a
//     page of the documents {results, offset, limit, total} (limit default
//     20, offset 0; fields, comma-separated, keeps only those attributes;
//     filter, a filter expression as the search's below, keeps only the
//     documents it matches, and total counts those, the filtered count;
//     the adapter takes it only as a hint), in the order they were first
//     added ("filter will not work without first explicitly adding
//     attributes to the filterableAttributes list",
//     https://www.meilisearch.com/docs/reference/api/documents, "Get
//     documents with GET"; filter since v1.2, its release notes,
//     https://www.meilisearch.com/docs/changelog/v1.2). Meilisearch itself
//     lists in ascending internal document id (a bitmap of them), not
//     by insertion order (that it reuses the ids of deleted documents is
//     a review's reading, not checked here): the adapter depends on no
//     order. An offset
//     counts the documents there are at the moment of each request, so a
//     document deleted ahead of a caller's offset between two pages shifts
//     the rest back by one, as in Meilisearch. Each request is answered
//     from one state of the index, under the fake's lock; that Meilisearch
//     does the same, and that its total is the filtered count, is
//     confirmed from its source, not run (crates/meilisearch/src/routes/
//     indexes/documents.rs, retrieve_documents: one read transaction of
//     the index, the filter evaluated on it, total the number of
//     candidates left). An index that does not exist is 404
//     index_not_found; a filter on an attribute that is not filterable is
//     400 invalid_document_filter.
//   - PATCH /indexes/{uid}/settings (202, task) stores the settings; of the
//     objects, pagination.maxTotalHits (default 1000) caps the matches a
//     search pages through and counts in estimatedTotalHits, and
//     faceting.maxValuesPerFacet (default 100) caps the values a facet
//     answers: the first in alphabetical order (sortFacetValuesBy's default,
//     "alpha"), as Meilisearch's documentation of the setting says (read,
//     not run).
//   - GET /tasks answers {results: [], total, limit, from, next} (no task
//     listed: the adapter reads it only to tell a key allowed tasks.get).
//   - GET /tasks/{uid} answers the task with status "succeeded" (work is done
//     synchronously here), or "failed" with its error object for a task
//     that failed (a deletion on a missing index), or 404 task_not_found.
//   - GET /version answers {commitSha, commitDate, pkgVersion}
//     (https://www.meilisearch.com/docs/reference/api/version), pkgVersion
//     DefaultVersion unless SetVersion changed it. Meilisearch answers it
//     only to a key allowed the "version" action (its source, crates/
//     meilisearch/src/routes/mod.rs, get_version: ActionPolicy
//     actions::VERSION; read, not run), and answers a key not allowed an
//     action as it answers a key it does not have, 403 invalid_api_key (its
//     authentication extractor's error; read, not run). The fake has one
//     key, allowed everything but, after ForbidVersion, GET /version: it
//     models that one action alone; ForbidListing likewise refuses the
//     document listing (GET /indexes/{uid}/documents, documents.get).
//   - Set to a version below 1.2 (SetVersion), the listing answers a
//     filter parameter 400 bad_request "Unknown parameter `filter`:
//     expected one of `offset`, `limit`, `fields`", before it looks for the
//     index, as Meilisearch 1.0 and 1.1 do: their GET documents' query
//     struct (BrowseQuery: offset, limit, fields) is deserialized with
//     deserr's deny_unknown_fields, whose error is DeserrQueryParamError's
//     default code bad_request, 400, in the extractor, before the handler
//     runs (meilisearch/src/routes/indexes/documents.rs at tags v1.0.0 and
//     v1.1.0; the message's shape from v1.1.0's routes/tasks.rs snapshot
//     of an unknown parameter; read, not run).
//   - After IgnoreListingFilter, the listing ignores its filter parameter
//     (every document matches), to emulate a server that does not know it
//     and does not refuse it either (a 0.x might; not verified).
//   - POST /indexes/{uid}/search with q, filter (AND-joined "attr op value"
//     expressions, op one of = != > >= < <=, or "attr EXISTS", "attr NOT
//     EXISTS", attributes must be filterable; https://www.meilisearch.com/
//     docs/learn/filtering_and_sorting/filter_expression_reference),
//     facets, sort ("attr:asc"),
//     limit (default 20), offset, matchingStrategy "all" → hits,
//     estimatedTotalHits, facetDistribution. Filtering or sorting on an
//     attribute that the settings do not declare fails with 400, as it does in
//     Meilisearch, so the adapter's EnsureSettings is exercised. An index that
//     no settings update or document addition created is 404 index_not_found.
//   - Errors are {message, code, type, link}; with a key configured every
//     request needs "Authorization: Bearer <key>": without the header it is
//     401 missing_authorization_header, with another key 403 invalid_api_key.
//
// Typo tolerance follows Meilisearch's defaults in spirit: one typo allowed in
// words of 5+ letters, two in 9+, the last query word also matches as a prefix.
package meilitest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// DefaultVersion is the pkgVersion a new Fake answers GET /version with:
// the oldest Meilisearch whose document listing takes a filter
// (meili.MinListingVersion), which the fake's listing follows.
const DefaultVersion = "1.2.0"

// maxQueryWords is how many words of q a search takes: Meilisearch ignores
// the words after the tenth (its "Known limitations", a hard limit).
const maxQueryWords = 10

// Fake is the fake Meilisearch, an http.Handler; it is safe for concurrent
// use.
type Fake struct {
	key     string
	mu      sync.Mutex
	version string // GET /version's pkgVersion
	// noVersion: GET /version refuses the key (403), as a key without the
	// "version" action; noFilter: the listing ignores its filter.
	// noListing: the document listing refuses the key (403), as a key
	// without the "documents.get" action.
	noVersion, noFilter, noListing bool
	tasks                          int64
	failed                         map[int64]map[string]string          // task → its error object, for a task that failed
	docs                           map[string]map[string]map[string]any // index → id → document
	order                          map[string][]string                  // index → ids in insertion order
	sets                           map[string]map[string][]string       // index → setting → attributes
	max                            map[string]int                       // index → pagination.maxTotalHits, when set
	facetMax                       map[string]int                       // index → faceting.maxValuesPerFacet, when set
}

// NewFake returns an empty fake that requires key as bearer token (none
// when key is empty).
func NewFake(key string) *Fake {
	return &Fake{key: key, version: DefaultVersion, failed: map[int64]map[string]string{},
		docs: map[string]map[string]map[string]any{}, order: map[string][]string{},
		sets: map[string]map[string][]string{}, max: map[string]int{}, facetMax: map[string]int{}}
}

func (f *Fake) fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg, "code": code, "type": "invalid_request",
		"link": "https://docs.meilisearch.com/errors#" + code})
}

func (f *Fake) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// enqueue answers a write with its summarized task (the caller holds f.mu).
func (f *Fake) enqueue(w http.ResponseWriter, index, typ string) {
	f.tasks++
	f.reply(w, http.StatusAccepted, map[string]any{"taskUid": f.tasks, "indexUid": index, "status": "enqueued",
		"type": typ, "enqueuedAt": time.Now().UTC().Format(time.RFC3339Nano)})
}

// Lose empties the fake as a Meilisearch that lost its data folder: every
// index, its documents and its settings are gone (the keys are not modelled).
func (f *Fake) Lose() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.docs, f.order = map[string]map[string]map[string]any{}, map[string][]string{}
	f.sets, f.max, f.facetMax = map[string]map[string][]string{}, map[string]int{}, map[string]int{}
}

// SetVersion makes GET /version answer pkgVersion v from now on (as a
// Meilisearch of that version would; "" answers an empty one). A version
// below 1.2 (MAJOR.MINOR read from its start) also makes the listing
// refuse its filter parameter, as Meilisearch 1.0 and 1.1 do.
func (f *Fake) SetVersion(v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version = v
}

// ForbidVersion makes GET /version answer the fake's key 403
// invalid_api_key from now on, as Meilisearch answers a key without the
// "version" action (forbid false allows it again); every other call is
// still allowed.
func (f *Fake) ForbidVersion(forbid bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noVersion = forbid
}

// ForbidListing makes the document listing (GET
// /indexes/{uid}/documents) answer the fake's key 403 invalid_api_key from
// now on, as Meilisearch answers a key without the "documents.get" action
// (forbid false allows it again); every other call is still allowed.
func (f *Fake) ForbidListing(forbid bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noListing = forbid
}

// IgnoreListingFilter makes the document listing ignore its filter
// parameter from now on (ignore false filters again): every document
// matches, and total counts them all.
func (f *Fake) IgnoreListingFilter(ignore bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noFilter = ignore
}

// filtersListing reports whether the fake's version takes the listing's
// filter: 1.2 or later, or a version whose MAJOR.MINOR it cannot read (the
// version check's own tests set those, and never list). The caller holds
// f.mu.
func (f *Fake) filtersListing() bool {
	var major, minor int
	if n, _ := fmt.Sscanf(f.version, "%d.%d", &major, &minor); n != 2 {
		return true
	}
	return major > 1 || major == 1 && minor >= 2
}

// Document returns index's document id as stored, and whether there is one.
func (f *Fake) Document(index, id string) (map[string]any, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.docs[index][id]
	return maps.Clone(d), ok
}

// IDs returns the ids of index's documents, in the order they were added.
func (f *Fake) IDs(index string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.order[index])
}

// Setting returns the attributes of one of index's list settings (e.g.
// filterableAttributes), nil when it was never set.
func (f *Fake) Setting(index, name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sets[index][name])
}

// ServeHTTP answers one request of Meilisearch's API.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if auth := r.Header.Get("Authorization"); f.key != "" && auth == "" {
		f.fail(w, http.StatusUnauthorized, "missing_authorization_header", "The Authorization header is missing. It must use the bearer authorization method.")
		return
	} else if f.key != "" && auth != "Bearer "+f.key {
		f.fail(w, http.StatusForbidden, "invalid_api_key", "The provided API key is invalid.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "version" && r.Method == http.MethodGet && f.noVersion:
		f.fail(w, http.StatusForbidden, "invalid_api_key", "The provided API key is invalid.")
	case len(parts) == 1 && parts[0] == "version" && r.Method == http.MethodGet:
		f.reply(w, http.StatusOK, map[string]any{"commitSha": "0000000000000000000000000000000000000000",
			"commitDate": "unknown", "pkgVersion": f.version})
	case len(parts) == 1 && parts[0] == "tasks" && r.Method == http.MethodGet:
		f.reply(w, http.StatusOK, map[string]any{"results": []any{}, "total": f.tasks, "limit": 20, "from": nil, "next": nil})
	case len(parts) == 2 && parts[0] == "tasks" && r.Method == http.MethodGet:
		uid, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || uid < 1 || uid > f.tasks {
			f.fail(w, http.StatusNotFound, "task_not_found", "Task not found.")
			return
		}
		if e, ok := f.failed[uid]; ok { // only deletions fail here
			f.reply(w, http.StatusOK, map[string]any{"uid": uid, "status": "failed", "type": "documentDeletion", "error": e})
			return
		}
		f.reply(w, http.StatusOK, map[string]any{"uid": uid, "status": "succeeded", "type": "documentAdditionOrUpdate",
			"error": nil, "enqueuedAt": time.Now().UTC().Format(time.RFC3339Nano)})
	case len(parts) == 3 && parts[0] == "indexes" && parts[2] == "documents" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
		var docs []map[string]any
		if err := json.NewDecoder(r.Body).Decode(&docs); err != nil {
			f.fail(w, http.StatusBadRequest, "malformed_payload", "The payload is not an array of objects.")
			return
		}
		pk := r.URL.Query().Get("primaryKey")
		if pk == "" {
			pk = "id"
		}
		index := parts[1]
		if f.docs[index] == nil {
			f.docs[index] = map[string]map[string]any{}
		}
		for _, d := range docs {
			id := fmt.Sprint(d[pk])
			old, exists := f.docs[index][id]
			if exists && r.Method == http.MethodPut {
				for k, v := range d {
					old[k] = v
				}
				continue
			}
			if !exists {
				f.order[index] = append(f.order[index], id)
			}
			f.docs[index][id] = d
		}
		f.enqueue(w, index, "documentAdditionOrUpdate")
	case len(parts) == 3 && parts[0] == "indexes" && parts[2] == "documents" && r.Method == http.MethodGet && f.noListing:
		f.fail(w, http.StatusForbidden, "invalid_api_key", "The provided API key is invalid.")
	case len(parts) == 3 && parts[0] == "indexes" && parts[2] == "documents" && r.Method == http.MethodGet:
		f.list(w, r, parts[1])
	case len(parts) == 4 && parts[0] == "indexes" && parts[2] == "documents" && r.Method == http.MethodDelete:
		index, id := parts[1], parts[3]
		if f.docs[index] == nil && f.sets[index] == nil {
			f.enqueue(w, index, "documentDeletion")
			f.failed[f.tasks] = map[string]string{"message": fmt.Sprintf("Index `%s` not found.", index),
				"code": "index_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#index_not_found"}
			return
		}
		delete(f.docs[index], id)
		f.order[index] = slices.DeleteFunc(f.order[index], func(s string) bool { return s == id })
		f.enqueue(w, index, "documentDeletion")
	case len(parts) == 3 && parts[0] == "indexes" && parts[2] == "settings" && r.Method == http.MethodPatch:
		var s map[string]any
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			f.fail(w, http.StatusBadRequest, "bad_request", "The settings are not a JSON object.")
			return
		}
		if f.sets[parts[1]] == nil {
			f.sets[parts[1]] = map[string][]string{}
		}
		for k, v := range s {
			if k == "pagination" {
				n, ok := intSetting(v, "maxTotalHits", 1)
				if !ok {
					f.fail(w, http.StatusBadRequest, "invalid_settings_pagination", "maxTotalHits must be a positive integer.")
					return
				}
				f.max[parts[1]] = n
				continue
			}
			if k == "faceting" {
				n, ok := intSetting(v, "maxValuesPerFacet", 0)
				if !ok {
					f.fail(w, http.StatusBadRequest, "invalid_settings_faceting", "maxValuesPerFacet must be a non-negative integer.")
					return
				}
				f.facetMax[parts[1]] = n
				continue
			}
			list, _ := v.([]any)
			attrs := []string{}
			for _, a := range list {
				attrs = append(attrs, fmt.Sprint(a))
			}
			f.sets[parts[1]][k] = attrs
		}
		f.enqueue(w, parts[1], "settingsUpdate")
	case len(parts) == 3 && parts[0] == "indexes" && parts[2] == "search" && r.Method == http.MethodPost:
		f.search(w, r, parts[1])
	default:
		f.fail(w, http.StatusNotFound, "not_found", "Route not handled by the fake.")
	}
}

// list answers GET /indexes/{uid}/documents (the caller holds f.mu).
func (f *Fake) list(w http.ResponseWriter, r *http.Request, index string) {
	if r.URL.Query().Has("filter") && !f.filtersListing() {
		f.fail(w, http.StatusBadRequest, "bad_request",
			"Unknown parameter `filter`: expected one of `offset`, `limit`, `fields`")
		return
	}
	if f.docs[index] == nil && f.sets[index] == nil {
		f.fail(w, http.StatusNotFound, "index_not_found", fmt.Sprintf("Index `%s` not found.", index))
		return
	}
	q := r.URL.Query()
	offset, limit := 0, 20
	for name, dst := range map[string]*int{"offset": &offset, "limit": &limit} {
		if raw := q.Get(name); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 0 {
				f.fail(w, http.StatusBadRequest, "invalid_document_"+name, name+" must be a non-negative integer.")
				return
			}
			*dst = n
		}
	}
	var fields []string
	if raw := q.Get("fields"); raw != "" && raw != "*" {
		fields = strings.Split(raw, ",")
	}
	var conds []condition
	if raw := q.Get("filter"); raw != "" && !f.noFilter {
		var err error
		if conds, err = f.parseFilter(index, raw); err != nil {
			f.fail(w, http.StatusBadRequest, "invalid_document_filter", err.Error())
			return
		}
	}
	var ids []string
	for _, id := range f.order[index] {
		if matches(conds, f.docs[index][id]) {
			ids = append(ids, id)
		}
	}
	results := []map[string]any{}
	for i := offset; i < len(ids) && i < offset+limit; i++ {
		doc := f.docs[index][ids[i]]
		if fields != nil {
			kept := map[string]any{}
			for _, k := range fields {
				if v, ok := doc[k]; ok {
					kept[k] = v
				}
			}
			doc = kept
		}
		results = append(results, doc)
	}
	f.reply(w, http.StatusOK, map[string]any{"results": results, "offset": offset, "limit": limit, "total": len(ids)})
}

type searchBody struct {
	Q                string   `json:"q"`
	Filter           any      `json:"filter"`
	Facets           []string `json:"facets"`
	Sort             []string `json:"sort"`
	Limit            *int     `json:"limit"`
	Offset           int      `json:"offset"`
	MatchingStrategy string   `json:"matchingStrategy"`
}

type condition struct {
	attr, op string
	value    any
}

func (f *Fake) parseFilter(index string, filter any) ([]condition, error) {
	expr, ok := filter.(string)
	if filter == nil {
		return nil, nil
	}
	if !ok {
		return nil, fmt.Errorf("only string filters are supported by the fake")
	}
	var out []condition
	for _, part := range strings.Split(expr, " AND ") {
		fields := strings.Fields(part)
		if exists := len(fields) == 2 && fields[1] == "EXISTS"; exists || len(fields) == 3 && fields[1] == "NOT" && fields[2] == "EXISTS" {
			if !slices.Contains(f.sets[index]["filterableAttributes"], fields[0]) {
				return nil, fmt.Errorf("attribute `%s` is not filterable", fields[0])
			}
			op := "NOT EXISTS"
			if exists {
				op = "EXISTS"
			}
			out = append(out, condition{attr: fields[0], op: op})
			continue
		}
		if len(fields) < 3 {
			return nil, fmt.Errorf("bad condition %q", part)
		}
		attr, op, raw := fields[0], fields[1], strings.Join(fields[2:], " ")
		if !slices.Contains(f.sets[index]["filterableAttributes"], attr) {
			return nil, fmt.Errorf("attribute `%s` is not filterable", attr)
		}
		var v any
		switch {
		case strings.HasPrefix(raw, `"`):
			s, err := strconv.Unquote(raw)
			if err != nil {
				return nil, fmt.Errorf("bad string %s", raw)
			}
			v = s
		case raw == "true" || raw == "false":
			v = raw == "true"
		default:
			n, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				return nil, fmt.Errorf("bad value %s", raw)
			}
			v = n
		}
		switch op {
		case "=", "!=", ">=", "<=", ">", "<":
		default:
			return nil, fmt.Errorf("operator %s not supported by the fake", op)
		}
		out = append(out, condition{attr, op, v})
	}
	return out, nil
}

// matches reports whether doc holds every condition.
func matches(conds []condition, doc map[string]any) bool {
	for _, c := range conds {
		if !c.holds(doc) {
			return false
		}
	}
	return true
}

func (c condition) holds(doc map[string]any) bool {
	got, exists := doc[c.attr]
	switch c.op {
	case "EXISTS":
		return exists
	case "NOT EXISTS":
		return !exists
	}
	if n, ok := c.value.(float64); ok {
		g, ok := got.(float64)
		if !ok {
			return false
		}
		switch c.op {
		case "=":
			return g == n
		case "!=":
			return g != n
		case ">=":
			return g >= n
		case "<=":
			return g <= n
		case ">":
			return g > n
		default:
			return g < n
		}
	}
	eq := fmt.Sprint(got) == fmt.Sprint(c.value)
	switch c.op {
	case "=":
		return eq
	case "!=":
		return !eq
	}
	return false
}

func tokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}

// typos is how many typos turn word into tok, or -1 when too many.
func typos(word, tok string, last bool) int {
	if word == tok || last && strings.HasPrefix(tok, word) {
		return 0
	}
	allowed := 0
	switch n := len([]rune(word)); {
	case n >= 9:
		allowed = 2
	case n >= 5:
		allowed = 1
	}
	if d := distance(word, tok); d <= allowed {
		return d
	}
	return -1
}

type scored struct {
	doc          map[string]any
	typos, attrs int
	pos          int
}

func (f *Fake) search(w http.ResponseWriter, r *http.Request, index string) {
	if f.docs[index] == nil && f.sets[index] == nil {
		f.fail(w, http.StatusNotFound, "index_not_found", fmt.Sprintf("Index `%s` not found.", index))
		return
	}
	var body searchBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.fail(w, http.StatusBadRequest, "bad_request", "The search body is not valid JSON.")
		return
	}
	if body.MatchingStrategy != "" && body.MatchingStrategy != "all" {
		f.fail(w, http.StatusBadRequest, "invalid_search_matching_strategy", "the fake implements only matchingStrategy all")
		return
	}
	conds, err := f.parseFilter(index, body.Filter)
	if err != nil {
		f.fail(w, http.StatusBadRequest, "invalid_search_filter", err.Error())
		return
	}
	for _, s := range body.Sort {
		attr, dir, _ := strings.Cut(s, ":")
		if !slices.Contains(f.sets[index]["sortableAttributes"], attr) || dir != "asc" && dir != "desc" {
			f.fail(w, http.StatusBadRequest, "invalid_search_sort", fmt.Sprintf("attribute `%s` is not sortable", attr))
			return
		}
	}
	for _, facet := range body.Facets {
		if !slices.Contains(f.sets[index]["filterableAttributes"], facet) {
			f.fail(w, http.StatusBadRequest, "invalid_search_facets", fmt.Sprintf("attribute `%s` is not filterable", facet))
			return
		}
	}
	searchable := f.sets[index]["searchableAttributes"]
	if len(searchable) == 0 {
		f.fail(w, http.StatusBadRequest, "fake_unsupported", "the fake needs searchableAttributes")
		return
	}
	// Meilisearch ignores the words after the tenth (a hard limit).
	words := tokens(body.Q)
	words = words[:min(len(words), maxQueryWords)]
	var matched []scored
	for pos, id := range f.order[index] {
		doc := f.docs[index][id]
		if !matches(conds, doc) {
			continue
		}
		ok := true
		s := scored{doc: doc, pos: pos}
		for i, word := range words {
			best, bestAttr := -1, 0
			for a, attr := range searchable {
				for _, tok := range tokens(fmt.Sprint(doc[attr])) {
					if t := typos(word, tok, i == len(words)-1); t >= 0 && (best < 0 || t < best) {
						best, bestAttr = t, a
					}
				}
			}
			if best < 0 {
				ok = false
				break
			}
			s.typos += best
			s.attrs += bestAttr
		}
		if ok {
			matched = append(matched, s)
		}
	}
	// Ranking rules: sort first (when asked), then typo, attribute, insertion.
	slices.SortStableFunc(matched, func(a, b scored) int {
		for _, s := range body.Sort {
			attr, dir, _ := strings.Cut(s, ":")
			c := compare(a.doc[attr], b.doc[attr])
			if dir == "desc" {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		if a.typos != b.typos {
			return a.typos - b.typos
		}
		if a.attrs != b.attrs {
			return a.attrs - b.attrs
		}
		return a.pos - b.pos
	})
	facets := map[string]map[string]int{}
	for _, facet := range body.Facets {
		facets[facet] = capFacet(facetValues(matched, facet), f.facetCap(index))
	}
	limit := 20
	if body.Limit != nil {
		limit = *body.Limit
	}
	maxTotal := 1000
	if n, ok := f.max[index]; ok {
		maxTotal = n
	}
	if len(matched) > maxTotal {
		matched = matched[:maxTotal]
	}
	hits := []map[string]any{}
	for i := body.Offset; i < len(matched) && i < body.Offset+limit; i++ {
		hits = append(hits, matched[i].doc)
	}
	f.reply(w, http.StatusOK, map[string]any{"hits": hits, "query": body.Q, "processingTimeMs": 0, "limit": limit,
		"offset": body.Offset, "estimatedTotalHits": len(matched), "facetDistribution": facets})
}

func compare(a, b any) int {
	if x, ok := a.(float64); ok {
		y, _ := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// facetValues counts the matches by their value of facet.
func facetValues(matched []scored, facet string) map[string]int {
	counts := map[string]int{}
	for _, m := range matched {
		counts[fmt.Sprint(m.doc[facet])]++
	}
	return counts
}

// facetCap is the index's faceting.maxValuesPerFacet (the caller holds f.mu).
func (f *Fake) facetCap(index string) int {
	if n, ok := f.facetMax[index]; ok {
		return n
	}
	return 100
}

// capFacet keeps the first n values of counts in alphabetical order.
func capFacet(counts map[string]int, n int) map[string]int {
	values := slices.Sorted(maps.Keys(counts))
	for _, v := range values[min(n, len(values)):] {
		delete(counts, v)
	}
	return counts
}

// intSetting reads the integer field of a settings object (v, decoded JSON):
// false when it is missing, not a whole number or below least.
func intSetting(v any, field string, least int) (int, bool) {
	p, _ := v.(map[string]any)
	n, ok := p[field].(float64)
	if !ok || n < float64(least) || n != float64(int(n)) {
		return 0, false
	}
	return int(n), true
}
