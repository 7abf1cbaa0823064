package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/meili"
	"github.com/shopfaas/shop/internal/search/meili/meilitest"
)

const key = "test-admin-key"

// TestMain runs the command's main instead of the tests when the test
// binary is started by TestAFailedRunExitsNonZero, so the exit code main
// gives is what is checked.
func TestMain(m *testing.M) {
	if os.Getenv("REINDEX_TEST_RUN_MAIN") == "1" {
		os.Args = []string{"reindex"}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// shop is a scratch catalog database, a fake Meilisearch, and a writer's
// dependencies over both (what create-, update-, archive-product push with).
type shop struct {
	t      *testing.T
	url    string
	fake   *meilitest.Fake
	srv    *httptest.Server
	writer *catalogenv.Deps
	ix     *meili.Index
	env    map[string]string

	mu sync.Mutex
	// intercept, when set, sees every request before the fake; it answers
	// the request itself when it returns true.
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

func newShop(t *testing.T) *shop {
	t.Helper()
	s := &shop{t: t, url: pgtest.NewDatabase(t), fake: meilitest.NewFake(key)}
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: s.url, Migrations: catalogdb.Migrations(), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		f := s.intercept
		s.mu.Unlock()
		if f != nil && f(w, r) {
			return
		}
		s.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	if s.ix, err = meili.New(meili.Config{URL: s.srv.URL, APIKey: key, PollInterval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := s.ix.EnsureSettings(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.writer = &catalogenv.Deps{Store: catalogdb.New(pool), External: s.ix}
	secrets := t.TempDir()
	if err := os.WriteFile(filepath.Join(secrets, catalogenv.IndexKeySecret), []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	s.env = map[string]string{"CATALOG_DATABASE_URL": s.url, "MEILI_URL": s.srv.URL, "SECRETS_DIR": secrets,
		"REINDEX_BATCH": "2"}
	return s
}

// setIntercept sets (or, with nil, clears) the request interceptor.
func (s *shop) setIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.intercept = f
}

// recordRequests records the method and path (with its query) of every
// request the fake receives from now until t ends, and lets answer (when
// not nil) answer it instead of the fake, as an intercept does; the
// returned function reads them so far.
func (s *shop) recordRequests(t *testing.T, answer func(w http.ResponseWriter, r *http.Request) bool) func() []string {
	var (
		mu   sync.Mutex
		reqs []string
	)
	s.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		reqs = append(reqs, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		return answer != nil && answer(w, r)
	})
	t.Cleanup(func() { s.setIntercept(nil) })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reqs)
	}
}

// unsync puts the index out of step with the catalog: a stale document
// (no product has its id) that a run must delete, and live product p's
// document gone, which a run must push again. It returns the stale
// document's id.
func (s *shop) unsync(p catalog.Product) uuid.UUID {
	s.t.Helper()
	ghost := search.Document{ID: uuid.Must(uuid.NewV7()), SKU: "GHOST", Name: "Gone", Category: "kitchen",
		Price: catalog.Money{Amount: 1, Currency: "USD"}}
	if err := s.ix.Upsert(context.Background(), ghost); err != nil {
		s.t.Fatal(err)
	}
	if err := s.ix.Delete(context.Background(), p.ID); err != nil {
		s.t.Fatal(err)
	}
	return ghost.ID
}

// create stores a product and pushes it as create-product does.
func (s *shop) create(name string) catalog.Product {
	s.t.Helper()
	p, err := catalog.NewProduct(catalog.Draft{SKU: "SKU-" + uuid.NewString()[:8], Name: name, Description: "About " + name,
		Category: "kitchen", Price: catalog.Money{Amount: 1200, Currency: "USD"}}, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	if p, err = s.writer.Store.Create(context.Background(), p); err != nil {
		s.t.Fatal(err)
	}
	if err := s.writer.Push(context.Background(), p); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// update changes a product as update-product does (name) or archives it as
// archive-product does, and pushes it.
func (s *shop) update(id uuid.UUID, name string, archive bool) catalog.Product {
	s.t.Helper()
	p, err := s.tryUpdate(id, name, archive)
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

// tryUpdate is update returning its error, for a goroutine other than the
// test's (an httptest handler), which must not call t.Fatal.
func (s *shop) tryUpdate(id uuid.UUID, name string, archive bool) (catalog.Product, error) {
	p, err := s.writer.Store.Update(context.Background(), id, func(p catalog.Product, now time.Time) (catalog.Product, error) {
		if archive {
			return catalog.Archive(p, now)
		}
		return catalog.Apply(p, catalog.Patch{Name: catalog.Optional[string]{Set: true, Value: name}}, now)
	})
	if err != nil {
		return p, err
	}
	return p, s.writer.Push(context.Background(), p)
}

// run runs the command with the shop's environment and returns its output.
func (s *shop) run() (string, error) {
	out, _, err := s.runWarned()
	return out, err
}

// runWarned is run also returning what the command wrote to stderr.
func (s *shop) runWarned() (out, warned string, err error) {
	var o, w bytes.Buffer
	err = run(context.Background(), nil, config.Env(s.env), &o, &w)
	return o.String(), w.String(), err
}

// forbidVersion makes Meilisearch answer GET /version 403, as it answers
// a key without the "version" action, and records every request's method
// and path (with its query) in reqs, until the test ends.
func (s *shop) forbidVersion(t *testing.T) (reqs func() []string) {
	return s.recordRequests(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/version" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"message":"The provided API key is invalid.","code":"invalid_api_key","type":"auth"}`)
		return true
	})
}

// walksTheIndex reports whether r is one of the run's listings of the
// index (GET documents), not its check of the listing before any change
// (meili.Index.CheckListingFilter, filter "bucket < 0", which no document
// matches): since a review of 2026-12-06 that check runs with every key,
// so the run's first GET documents is no longer its first listing.
func walksTheIndex(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/documents") && r.URL.Query().Get("filter") != "bucket < 0"
}

// ids are the fake index's document ids, sorted.
func (s *shop) ids() []string {
	ids := s.fake.IDs("products")
	slices.Sort(ids)
	return ids
}

func sorted(ps ...catalog.Product) []string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID.String())
	}
	slices.Sort(ids)
	return ids
}

// A Meilisearch that lost its data, and whose index a writer's push then
// created without its settings (every search refused), is rebuilt: the
// settings the writers apply, and every live product as the catalog holds
// it (sold count and stock included), paged through the catalog in batches;
// an archived product stays out.
func TestAReindexRebuildsALostIndexWithItsSettingsAndEveryLiveProduct(t *testing.T) {
	s := newShop(t)
	var live []catalog.Product
	for i := range 5 {
		live = append(live, s.create(fmt.Sprintf("Kettle %d", i)))
	}
	archived := s.update(s.create("Old kettle").ID, "", true)
	ctx := context.Background()
	sold, err := s.writer.Store.SetSoldCount(ctx, live[1].ID, 7)
	if err != nil {
		t.Fatal(err)
	}
	stocked, err := s.writer.Store.SetAvailability(ctx, live[2].ID, true)
	if err != nil {
		t.Fatal(err)
	}
	live[1], live[2] = sold, stocked

	s.fake.Lose()
	// The first push after the loss creates the index without its settings.
	if err := s.writer.Push(ctx, live[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ix.Search(ctx, search.Query{Limit: 10}); err == nil {
		t.Fatal("a search of an index without its settings was answered: the test would prove nothing")
	}

	out, err := s.run()
	if err != nil {
		t.Fatalf("reindex: %v (output %q)", err, out)
	}
	if !strings.Contains(out, "pushed 5 product(s) (0 pushed again") || !strings.Contains(out, "deleted 0 document(s)") {
		t.Errorf("output %q, want 5 pushed, 0 deleted", out)
	}
	if diff := cmp.Diff(meili.IndexSettings().FilterableAttributes, s.fake.Setting("products", "filterableAttributes")); diff != "" {
		t.Errorf("filterable attributes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(meili.IndexSettings().SortableAttributes, s.fake.Setting("products", "sortableAttributes")); diff != "" {
		t.Errorf("sortable attributes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sorted(live...), s.ids()); diff != "" {
		t.Errorf("index ids (-want +got), archived %s must be absent:\n%s", archived.ID, diff)
	}
	res, err := s.ix.Search(ctx, search.Query{Sort: search.SortPopularity, Limit: 10})
	if err != nil {
		t.Fatalf("search after the reindex: %v", err)
	}
	if res.Total != len(live) || len(res.Hits) == 0 || res.Hits[0].ID != live[1].ID || res.Hits[0].SoldCount != 7 {
		t.Errorf("search by popularity: total %d, hits %v, want %d, %s with sold_count 7", res.Total, res.Hits, len(live), live[1].ID)
	}
	if d, ok := s.fake.Document("products", live[2].ID.String()); !ok || d["in_stock"] != true {
		t.Errorf("in-stock product's document %v, want in_stock true", d)
	}
}

// A document whose product the catalog does not have, or has archived (its
// delete push failed), is removed; the live products' stay. The stale ones
// sit among the live ones, across several pages of the listing.
func TestAReindexRemovesDocumentsOfProductsNotLive(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	var live []catalog.Product
	for i := range 3 {
		live = append(live, s.create(fmt.Sprintf("Pan %d", i)))
		ghost := search.Document{ID: uuid.Must(uuid.NewV7()), SKU: "GHOST", Name: "Restored away",
			Category: "kitchen", Price: catalog.Money{Amount: 1, Currency: "USD"}}
		if err := s.ix.Upsert(ctx, ghost); err != nil {
			t.Fatal(err)
		}
	}
	gone := s.update(s.create("Archived pan").ID, "", true)
	// Its delete push was lost: the document is still there.
	if err := s.ix.Upsert(ctx, search.FromProduct(gone)); err != nil {
		t.Fatal(err)
	}
	if n := len(s.ids()); n != 7 {
		t.Fatalf("index holds %d documents before the reindex, want 7", n)
	}
	out, err := s.run()
	if err != nil {
		t.Fatalf("reindex: %v (output %q)", err, out)
	}
	if diff := cmp.Diff(sorted(live...), s.ids()); diff != "" {
		t.Errorf("index ids (-want +got):\n%s", diff)
	}
	if !strings.Contains(out, "deleted 4 document(s)") {
		t.Errorf("output %q, want 4 deleted", out)
	}
}

// One run leaves the index holding exactly the catalog's live products,
// though writers remove and add documents while it lists the index: after
// the first request of the listing that answered documents (the probe of
// the whole range of buckets, which only finds it holds too many to check
// at once), and before the next, a live product is archived (its writer
// deletes its document, ahead of the walk) and a product is created (its
// writer pushes it). Listing by offset, such a deletion shifted the
// documents after it back by one, so the stale document that moved below
// the offset was never seen (a second run removed it).
func TestOneReindexRemovesEveryStaleDocumentDespiteConcurrentRemovals(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	ghost := func() {
		t.Helper()
		if err := s.ix.Upsert(ctx, search.Document{ID: uuid.Must(uuid.NewV7()), SKU: "GHOST", Name: "Restored away",
			Category: "kitchen", Price: catalog.Money{Amount: 1, Currency: "USD"}}); err != nil {
			t.Fatal(err)
		}
	}
	// In the index's order: two live products, then stale documents among
	// live ones, so a page of two ends on the second live product.
	live := []catalog.Product{s.create("Pan 0"), s.create("Pan 1")}
	for i := range 3 {
		ghost()
		live = append(live, s.create(fmt.Sprintf("Pan %d", i+2)))
	}
	ghost()
	var (
		once     sync.Once
		mu       sync.Mutex
		answered bool // a page of documents was answered
		created  catalog.Product
	)
	s.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/documents") {
			return false
		}
		mu.Lock()
		between := answered
		mu.Unlock()
		if between {
			// After the listing's first request that answered documents
			// (the whole-range probe: nothing checked yet) and before the
			// next, on the server's goroutine (t.Error, not t.Fatal): an
			// archive ahead of the walk, and a creation, each pushed by its
			// writer.
			once.Do(func() {
				if _, err := s.tryUpdate(live[0].ID, "", true); err != nil {
					t.Errorf("the concurrent archive: %v", err)
				}
				p, err := catalog.NewProduct(catalog.Draft{SKU: "SKU-NEW", Name: "New pan", Category: "kitchen",
					Price: catalog.Money{Amount: 900, Currency: "USD"}}, time.Now())
				if err == nil {
					p, err = s.writer.Store.Create(context.Background(), p)
				}
				if err == nil {
					err = s.writer.Push(context.Background(), p)
				}
				if err != nil {
					t.Errorf("the concurrent creation: %v", err)
				}
				mu.Lock()
				created = p
				mu.Unlock()
			})
		}
		rec := httptest.NewRecorder()
		s.fake.ServeHTTP(rec, r)
		var page struct {
			Results []any `json:"results"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Errorf("the listing's answer: %v", err)
		}
		mu.Lock()
		answered = answered || len(page.Results) > 0
		mu.Unlock()
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return true
	})
	out, err := s.run()
	if err != nil {
		t.Fatalf("reindex: %v (output %q)", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if created.ID == uuid.Nil {
		t.Fatal("the concurrent writes did not run: the test would prove nothing")
	}
	if diff := cmp.Diff(sorted(append(live[1:], created)...), s.ids()); diff != "" {
		t.Errorf("index ids after one run (-want +got):\n%s", diff)
	}
	if !strings.Contains(out, "deleted 4 document(s)") {
		t.Errorf("output %q, want 4 deleted", out)
	}
}

// A document without a bucket (pushed by a release before buckets, which
// the listing by bucket cannot see) is removed when its product is not
// live, and pushed again with its bucket when it is: here an older
// writer's push of a live product lands after the run pushed it, before it
// lists the index.
func TestAReindexHandlesDocumentsWithoutABucket(t *testing.T) {
	s := newShop(t)
	p := s.create("Kettle")
	stale := uuid.Must(uuid.NewV7())
	s.oldPush(t, stale)
	var once sync.Once
	s.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if walksTheIndex(r) {
			once.Do(func() { s.oldPush(t, p.ID) }) // the server's goroutine: t.Error only
		}
		return false
	})
	out, err := s.run()
	if err != nil {
		t.Fatalf("reindex: %v (output %q)", err, out)
	}
	if diff := cmp.Diff(sorted(p), s.ids()); diff != "" {
		t.Errorf("index ids (-want +got):\n%s", diff)
	}
	if d, ok := s.fake.Document("products", p.ID.String()); !ok || d["bucket"] != float64(meili.BucketOf(p.ID)) || d["name"] != "Kettle" {
		t.Errorf("the live product's document %v, want it as the catalog holds it, with its bucket %d", d, meili.BucketOf(p.ID))
	}
	if !strings.Contains(out, "(1 pushed again") || !strings.Contains(out, "deleted 1 document(s)") {
		t.Errorf("output %q, want 1 pushed again, 1 deleted", out)
	}
}

// oldPush pushes a document for each of ids as a writer of a release
// before buckets did: without a bucket. It calls t.Error only, so it may
// run on the fake server's goroutine.
func (s *shop) oldPush(t *testing.T, ids ...uuid.UUID) {
	t.Helper()
	var docs []string
	for _, id := range ids {
		docs = append(docs, fmt.Sprintf(`{"id":%q,"name":"Old","price":1}`, id))
	}
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/indexes/products/documents?primaryKey=id",
		strings.NewReader("["+strings.Join(docs, ",")+"]"))
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	s.fake.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Errorf("the fake answered %d to the old documents", rec.Code)
	}
	for _, id := range ids {
		if d, ok := s.fake.Document("products", id.String()); !ok || d["bucket"] != nil {
			t.Errorf("document %s: %v, want one without a bucket", id, d)
		}
	}
}

// A writer of an older release still running pushes its documents again
// without a bucket after the run pushed them with theirs: when a whole page
// of documents without a bucket is the page before again, the run stops
// (main exits 1 on the error, TestAFailedRunExitsNonZero) naming the cause,
// rather than looping for ever. Here every "bucket NOT EXISTS" listing is
// preceded by such a push of every document it listed before. The stop
// deletes nothing: the two live products' documents and a third live
// product's (with its bucket) are all still in the index, and the counts
// say 0 deleted. With the repeat check removed the run pushed them again
// ten times each and exited 0.
func TestARunStopsWhenDocumentsStayWithoutABucket(t *testing.T) {
	s := newShop(t)
	p, q, r := s.create("Kettle"), s.create("Teapot"), s.create("Mug")
	s.oldPush(t, p.ID, q.ID)
	var (
		mu       sync.Mutex
		listings int
	)
	s.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/documents") ||
			r.URL.Query().Get("filter") != "bucket NOT EXISTS" {
			return false
		}
		mu.Lock()
		listings++
		n := listings
		mu.Unlock()
		if n <= 10 { // bounded, so a run that loops ends (and fails the test)
			s.oldPush(t, p.ID, q.ID) // the server's goroutine: t.Error only
		}
		return false
	})
	out, err := s.run()
	if err == nil || !strings.Contains(err.Error(), "2 document(s) still without a bucket after their push") ||
		!strings.Contains(err.Error(), "older release") {
		t.Fatalf("reindex: %v (output %q), want the run stopped: documents still without a bucket", err, out)
	}
	if !strings.Contains(out, "(2 pushed again") || !strings.Contains(out, "deleted 0 document(s)") {
		t.Errorf("output %q, want the counts: 2 pushed again, 0 deleted", out)
	}
	if diff := cmp.Diff(sorted(p, q, r), s.ids()); diff != "" {
		t.Errorf("index ids after the stop (-want +got), nothing deleted:\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if listings != 2 {
		t.Errorf("%d listings of the documents without a bucket, want 2 (the page, then the same page again)", listings)
	}
}

// The counts say what each push did, not what a read before it found: a
// live product's document without a bucket is pushed again, and the
// product is archived while that push is under way (before Meilisearch
// applies it), so the push ends removing the document, counted as
// deleted, not as pushed again.
func TestAReindexCountsWhatItsPushesDid(t *testing.T) {
	s := newShop(t)
	p := s.create("Kettle")
	var (
		mu       sync.Mutex
		listed   bool // the documents without a bucket were listed
		archived bool
	)
	s.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case walksTheIndex(r) && !listed:
			listed = true
			s.oldPush(t, p.ID) // the server's goroutine: t.Error only
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/documents") && listed && !archived:
			// The run's push of the listed document, before the fake applies
			// it: the catalog archives the product, its row alone (nothing
			// deletes the document from the index here), so this push lands
			// and the run's read after it sees the archive and deletes the
			// document itself.
			archived = true
			if _, err := s.writer.Store.Update(context.Background(), p.ID, func(q catalog.Product, now time.Time) (catalog.Product, error) {
				return catalog.Archive(q, now)
			}); err != nil {
				t.Errorf("the concurrent archive: %v", err)
			}
		}
		return false
	})
	out, err := s.run()
	if err != nil {
		t.Fatalf("reindex: %v (output %q)", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if !archived {
		t.Fatal("the archive did not run: the test would prove nothing")
	}
	if ids := s.ids(); len(ids) != 0 {
		t.Errorf("index ids %v, want none (the product was archived)", ids)
	}
	if !strings.Contains(out, "(0 pushed again") || !strings.Contains(out, "deleted 1 document(s)") {
		t.Errorf("output %q, want 0 pushed again, 1 deleted", out)
	}
}

// A write that commits after the reindex read its batch, and whose push
// lands before the batch does, is not undone: the reindex reads the batch's
// products again once it landed and pushes the changed ones as the writers
// do. Both an edit and an archive.
func TestAReindexNeverUndoesAConcurrentWrite(t *testing.T) {
	for _, archive := range []bool{false, true} {
		t.Run(fmt.Sprintf("archive=%v", archive), func(t *testing.T) {
			s := newShop(t)
			p := s.create("Teapot")
			var once sync.Once
			s.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/documents") {
					return false
				}
				// The reindex's batch, read before this write, lands after
				// the write's own push.
				// This runs on the server's goroutine: t.Error, not t.Fatal.
				once.Do(func() {
					s.setIntercept(nil)
					if _, err := s.tryUpdate(p.ID, "Teapot, blue", archive); err != nil {
						t.Errorf("the concurrent write: %v", err)
					}
				})
				return false
			})
			out, err := s.run()
			if err != nil {
				t.Fatalf("reindex: %v (output %q)", err, out)
			}
			d, ok := s.fake.Document("products", p.ID.String())
			switch {
			case archive && ok:
				t.Errorf("the archived product is back in the index: %v", d)
			case !archive && (!ok || d["name"] != "Teapot, blue"):
				t.Errorf("document %v, want the edit's name %q", d, "Teapot, blue")
			}
			if !strings.Contains(out, "(1 pushed again") {
				t.Errorf("output %q, want 1 pushed again", out)
			}
		})
	}
}

// A batch Meilisearch accepted, and applies, while the run stops waiting
// for its task (here the operator's interrupt) does not undo a write that
// committed after the batch was read and whose push landed first: the run
// still fails, but pushes the batch's changed products again after it, on
// a context the interrupt does not cancel.
func TestAnInterruptedPushDoesNotLeaveAnOlderRow(t *testing.T) {
	s := newShop(t)
	p := s.create("Teapot")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	s.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/documents") {
			return false
		}
		answered := false
		// This runs on the server's goroutine: t.Error, not t.Fatal.
		once.Do(func() {
			s.setIntercept(nil)
			if _, err := s.tryUpdate(p.ID, "Teapot, blue", false); err != nil {
				t.Errorf("the concurrent write: %v", err)
			}
			// The batch, read before the write, lands after its push;
			// then the operator interrupts the run while it waits.
			s.fake.ServeHTTP(w, r)
			cancel()
			answered = true
		})
		return answered
	})
	var out bytes.Buffer
	err := run(ctx, nil, config.Env(s.env), &out, io.Discard)
	if err == nil {
		t.Fatalf("the interrupted run succeeded (output %q)", out.String())
	}
	if d, ok := s.fake.Document("products", p.ID.String()); !ok || d["name"] != "Teapot, blue" {
		t.Errorf("document %v, want the edit's name %q (err %v)", d, "Teapot, blue", err)
	}
	if !strings.Contains(out.String(), "(1 pushed again") {
		t.Errorf("output %q, want 1 pushed again", out.String())
	}
}

// Any Meilisearch failure (settings refused, a push answered 500, a task
// that failed, the listing refused, at the check before any change or
// only once the run walks the index, the listing's filter refused once an
// older writer's settings made bucket unfilterable) fails the run, with the
// counts so far.
func TestAMeilisearchErrorFailsTheRun(t *testing.T) {
	refuse := func(method, suffix string) func() func(w http.ResponseWriter, r *http.Request) bool {
		return func() func(w http.ResponseWriter, r *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != method || !strings.HasSuffix(r.URL.Path, suffix) {
					return false
				}
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"message":"The provided API key is invalid.","code":"invalid_api_key"}`)
				return true
			}
		}
	}
	failing := map[string]func() func(w http.ResponseWriter, r *http.Request) bool{
		"settings refused": refuse(http.MethodPatch, "/settings"),
		"listing refused":  refuse(http.MethodGet, "/documents"),
		// Refused only once the run walks the index, past its check
		// before any change (a key remade meanwhile): the run still fails.
		"listing refused after the check": func() func(w http.ResponseWriter, r *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if !walksTheIndex(r) {
					return false
				}
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"message":"The provided API key is invalid.","code":"invalid_api_key"}`)
				return true
			}
		},
		"push answered 500": func() func(w http.ResponseWriter, r *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/documents") {
					return false
				}
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprint(w, `{"message":"boom","code":"internal"}`)
				return true
			}
		},
		// A writer of an older release builds while the run lists: its
		// settings make bucket no longer filterable, so the listing by
		// bucket is refused (400 invalid_document_filter).
		"older writer's settings": func() func(w http.ResponseWriter, r *http.Request) bool {
			var once sync.Once
			return func(w http.ResponseWriter, r *http.Request) bool {
				if !walksTheIndex(r) {
					return false
				}
				var err error
				once.Do(func() {
					// Through the same server, as the writer would.
					var req *http.Request
					req, err = http.NewRequestWithContext(r.Context(), http.MethodPatch, "http://"+r.Host+"/indexes/products/settings",
						strings.NewReader(`{"filterableAttributes":["category","price","in_stock","archived"]}`))
					if err != nil {
						return
					}
					req.Header.Set("Authorization", "Bearer "+key)
					req.Header.Set("Content-Type", "application/json")
					var resp *http.Response
					if resp, err = http.DefaultClient.Do(req); err == nil {
						_ = resp.Body.Close()
						if resp.StatusCode != http.StatusAccepted {
							err = fmt.Errorf("the older settings answered %d", resp.StatusCode)
						}
					}
				})
				if err != nil {
					// Answer so the run fails for certain, and say why.
					w.WriteHeader(http.StatusTeapot)
					fmt.Fprintf(w, `{"message":%q,"code":"test_setup"}`, err.Error())
					return true
				}
				return false
			}
		},
		// The push is accepted, its task fails.
		"task failed": func() func(w http.ResponseWriter, r *http.Request) bool {
			var pushed atomic.Bool
			return func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/documents") {
					pushed.Store(true)
					return false
				}
				if !pushed.Load() || !strings.HasPrefix(r.URL.Path, "/tasks/") {
					return false
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"status":"failed","error":{"message":"disk full","code":"no_space_left_on_device"}}`)
				return true
			}
		},
	}
	// What the error must say, where the failure is not the interceptor's
	// own answer.
	wantErr := map[string]string{"older writer's settings": "invalid_document_filter"}
	for name, f := range failing {
		t.Run(name, func(t *testing.T) {
			s := newShop(t)
			s.create("Cup")
			s.fake.Lose()
			s.setIntercept(f())
			out, err := s.run()
			if err == nil {
				t.Fatalf("reindex succeeded (output %q)", out)
			}
			if !strings.Contains(err.Error(), wantErr[name]) {
				t.Errorf("reindex: %v, want an error saying %s", err, wantErr[name])
			}
			if !strings.Contains(out, "pushed ") {
				t.Errorf("output %q, want the counts", out)
			}
		})
	}
}

// main exits 1 when the run fails (here Meilisearch refuses the key, or
// is older than v1.2, its version read or, with a key that may not read
// it, its listing's filter refused, or the key lacks documents.get,
// whether or not it may read the version), and 0 when it succeeds, so a
// script or a Job sees the failure. A wrong key (refused GET /version and
// the listing alike) says "meili-key refused" and warns of no version
// action (until a review of 2026-12-06 it was advised to add one).
func TestAFailedRunExitsNonZero(t *testing.T) {
	s := newShop(t)
	s.create("Mug")
	for _, tc := range []struct {
		key, version string
		forbid       bool // answer GET /version 403: a key without the version action
		code         int
		warn         bool // a warning that the version was not checked
		noListing    bool // the listing refused too: a key without documents.get either
	}{
		{"wrong-key", meilitest.DefaultVersion, false, 1, false, false},
		{key, "1.1.2", false, 1, false, false},
		{key, "1.1.2", true, 1, true, false},
		{key, meilitest.DefaultVersion, true, 0, true, false},
		{key, meilitest.DefaultVersion, false, 0, false, false},
		{key, meilitest.DefaultVersion, true, 1, false, true},
		{key, meilitest.DefaultVersion, false, 1, false, true},
	} {
		if err := os.WriteFile(filepath.Join(s.env["SECRETS_DIR"], catalogenv.IndexKeySecret), []byte(tc.key), 0o600); err != nil {
			t.Fatal(err)
		}
		s.fake.SetVersion(tc.version)
		s.setIntercept(nil)
		if tc.forbid {
			s.forbidVersion(t)
		}
		s.fake.ForbidListing(tc.noListing)
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "REINDEX_TEST_RUN_MAIN=1")
		for k, v := range s.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("key %s, Meilisearch %s, version forbidden %v: exit code %d, want %d (stderr %q)",
				tc.key, tc.version, tc.forbid, code, tc.code, stderr.String())
		}
		if warned := strings.Contains(stderr.String(), "reindex: warning:"); warned != tc.warn {
			t.Errorf("key %s, Meilisearch %s, version forbidden %v: warned %v (stderr %q)", tc.key, tc.version, tc.forbid, warned, stderr.String())
		}
		if refused := strings.Contains(stderr.String(), "meili-key refused"); refused != (tc.key == "wrong-key") {
			t.Errorf("key %s, Meilisearch %s, version forbidden %v: said meili-key refused %v (stderr %q)", tc.key, tc.version, tc.forbid, refused, stderr.String())
		}
		if remake := strings.Contains(stderr.String(), "lacks the documents.get action") &&
			strings.Contains(stderr.String(), "step 7, item 7"); remake != tc.noListing {
			t.Errorf("key %s, listing forbidden %v: told to remake the key (step 7, item 7) %v (stderr %q)", tc.key, tc.noListing, remake, stderr.String())
		}
		if strings.Contains(stderr.String(), key) || strings.Contains(stderr.String(), "wrong-key") {
			t.Errorf("stderr holds the key: %q", stderr.String())
		}
	}
	s.fake.ForbidListing(false)
}

// A key allowed the "version" action but not documents.get (made with the
// version action added to an older key's list, say) passes the version
// check, yet cannot list: the run checks the listing before any change, so
// it stops there, "meili-key may not list the documents of index
// products", the key lacking "the documents.get action" pointing to
// step 7, item 7, with no warning (the version was checked), nothing
// pushed or deleted and no settings update: the stale document stays, a
// live product's missing document stays missing. Until a review of
// 2026-12-06 such a key passed, every product was pushed, and the run
// failed only at its first listing, after all that work.
func TestAKeyWithoutDocumentsGetStopsTheRunBeforeAnyPush(t *testing.T) {
	s := newShop(t)
	p := s.create("Kettle")
	s.create("Teapot")
	s.unsync(p)
	before := s.ids()
	requests := s.recordRequests(t, nil)
	s.fake.ForbidListing(true)
	t.Cleanup(func() { s.fake.ForbidListing(false) })

	out, warned, err := s.runWarned()
	if !errors.Is(err, meili.ErrKeyLacksListing) || !strings.Contains(err.Error(), "meili-key may not list the documents of index products") ||
		!strings.Contains(err.Error(), "lacks the documents.get action on index products") ||
		!strings.Contains(err.Error(), "step 7, item 7") || strings.Contains(err.Error(), key) {
		t.Errorf("reindex with a key without documents.get: %v (output %q), want it stopped: "+
			"meili-key may not list the documents of index products, lacks the documents.get action on index products, "+
			"step 7, item 7, never the key", err, out)
	}
	if warned != "" {
		t.Errorf("stderr %q, want no warning: the version was checked", warned)
	}
	if !strings.Contains(out, "pushed 0 product(s) (0 pushed again, changed meanwhile), deleted 0 document(s)") {
		t.Errorf("output %q, want nothing pushed or deleted", out)
	}
	reqs := requests()
	if len(reqs) == 0 || reqs[0] != "GET /version" {
		t.Errorf("requests %q, want GET /version first", reqs)
	}
	for _, r := range reqs {
		if strings.HasPrefix(r, "POST ") || strings.HasPrefix(r, "PUT ") || strings.HasPrefix(r, "DELETE ") ||
			strings.HasPrefix(r, "PATCH ") {
			t.Errorf("the run sent %s: a key that cannot list gets no push, deletion or settings update", r)
		}
	}
	if diff := cmp.Diff(before, s.ids()); diff != "" {
		t.Errorf("index ids after the stopped run (-want +got):\n%s", diff)
	}
}

// refuseOtherIndexes makes Meilisearch answer every call on an index
// other than products 403 invalid_api_key, as it answers a key whose
// "indexes" hold products alone (the guides' key loop makes meili-key
// so), until the test ends; GET /version and GET /tasks still answer, as
// they do such a key.
func (s *shop) refuseOtherIndexes(t *testing.T) {
	s.recordRequests(t, func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/indexes/") || strings.HasPrefix(r.URL.Path, "/indexes/products/") {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"message":"The provided API key is invalid.","code":"invalid_api_key","type":"auth"}`)
		return true
	})
}

// A key made for another index (the guide's meili-key holds "indexes":
// ["products"]) run with MEILI_INDEX set to another index is refused the
// listing, 403 invalid_api_key, as a key without documents.get is, while
// GET /version and GET /tasks answer: the run stops before any change
// and its error names the index and both causes, and that MEILI_INDEX is
// not the index the guide's key is made for, still
// meili.ErrKeyLacksListing. Until a review of 2026-12-06 it said only
// "meili-key lacks the documents.get action … remake it with
// documents.get", which cannot help such a key.
func TestAKeyForAnotherIndexIsToldItsIndexesMayNotIncludeThisOne(t *testing.T) {
	s := newShop(t)
	s.create("Kettle")
	s.refuseOtherIndexes(t)
	s.env["MEILI_INDEX"] = "shop-staging"

	out, err := s.run()
	for _, says := range []string{
		"meili-key may not list the documents of index shop-staging",
		"lacks the documents.get action on index shop-staging",
		"or its indexes do not include shop-staging",
		"MEILI_INDEX is shop-staging, but the guide's key loop makes meili-key for index products alone",
	} {
		if !errors.Is(err, meili.ErrKeyLacksListing) || !strings.Contains(fmt.Sprint(err), says) {
			t.Errorf("reindex of shop-staging with a key for products: %v, want meili.ErrKeyLacksListing saying %q", err, says)
		}
	}
	if strings.Contains(fmt.Sprint(err), key) {
		t.Errorf("reindex: %v holds the key", err)
	}
	if !strings.Contains(out, "pushed 0 product(s)") {
		t.Errorf("output %q, want nothing pushed", out)
	}
}

// A key Meilisearch has just accepted (GET /version answered it, or, when
// the key lacks the "version" action, the version check listed the
// documents with it) that the listing and GET /tasks then refuse is
// genuine, lacking documents.get and tasks.get (or deleted meanwhile):
// the run stops before any change with meili.ErrKeyLacksListing saying
// so, never "meili-key refused" (which sends the operator to check the
// secret's value). Until a review of 2026-12-06 it was meili.ErrKeyRefused.
func TestAKeyJustAcceptedIsNeverCalledRefused(t *testing.T) {
	s := newShop(t)
	s.create("Kettle")
	refuse := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"message":"The provided API key is invalid.","code":"invalid_api_key","type":"auth"}`)
	}
	for _, tc := range []struct {
		name, accepted string
		noVersion      bool
	}{
		{"version allowed", "GET /version answered it", false},
		{"version forbidden", "the version check listed the documents with it", true},
	} {
		s.recordRequests(t, func(w http.ResponseWriter, r *http.Request) bool {
			switch {
			case r.URL.Path == "/tasks", tc.noVersion && r.URL.Path == "/version":
			case r.URL.Path == "/indexes/products/documents" && r.URL.Query().Get("filter") == "bucket < 0":
			default:
				return false
			}
			refuse(w)
			return true
		})
		out, err := s.run()
		for _, says := range []string{"meili-key may not list the documents of index products", tc.accepted,
			"lacks both the documents.get and tasks.get actions", "deleted meanwhile"} {
			if !errors.Is(err, meili.ErrKeyLacksListing) || errors.Is(err, meili.ErrKeyRefused) || !strings.Contains(fmt.Sprint(err), says) {
				t.Errorf("%s: reindex = %v, want meili.ErrKeyLacksListing (not ErrKeyRefused) saying %q", tc.name, err, says)
			}
		}
		if strings.Contains(fmt.Sprint(err), "meili-key refused") || strings.Contains(fmt.Sprint(err), key) {
			t.Errorf("%s: reindex = %v, want neither \"meili-key refused\" nor the key", tc.name, err)
		}
		if !strings.Contains(out, "pushed 0 product(s)") {
			t.Errorf("%s: output %q, want nothing pushed", tc.name, out)
		}
	}
}

// A Meilisearch whose version the run has just read as v1.2 or later (the
// fake's default) but whose listing answers a filter nothing matches
// with a document (it ignored the filter) is not told to upgrade: the run
// stops before any change with an unexpected listing answer naming the
// index and the document, still meili.ErrVersionRefused. Until a review
// of 2026-12-06 it said "as no Meilisearch since 1.2.0 does: upgrade it
// first" to a server that had just reported a later version.
func TestAServerReadAsNewEnoughIsNeverToldToUpgrade(t *testing.T) {
	s := newShop(t)
	p := s.create("Kettle")
	s.fake.IgnoreListingFilter(true)
	t.Cleanup(func() { s.fake.IgnoreListingFilter(false) })

	out, err := s.run()
	for _, says := range []string{"an unexpected listing answer", "GET /indexes/products/documents",
		"with document " + p.ID.String(), "though GET /version reported Meilisearch 1.2.0 or later"} {
		if !errors.Is(err, meili.ErrVersionRefused) || !strings.Contains(fmt.Sprint(err), says) {
			t.Errorf("reindex against a listing ignoring its filter = %v, want meili.ErrVersionRefused saying %q", err, says)
		}
	}
	if strings.Contains(fmt.Sprint(err), "upgrade it first") {
		t.Errorf("reindex = %v, want no advice to upgrade a server just read as v1.2 or later", err)
	}
	if !strings.Contains(out, "pushed 0 product(s)") {
		t.Errorf("output %q, want nothing pushed", out)
	}
}

// A Meilisearch older than v1.2 (whose listing may not filter), or one
// whose version the run cannot parse, is refused before anything changes
// (a key without the version action is not refused:
// TestAKeyWithoutTheVersionActionOnlyWarns): the run's one
// request is GET /version, so no setting is applied, no document pushed
// or deleted (a live product's missing document stays missing, a stale
// one stays), and it fails naming the version (main exits 1,
// TestAFailedRunExitsNonZero). Once the fake answers 1.2.0 the same
// index is rebuilt. Without the check, each run went on and rebuilt it.
func TestAReindexRefusesAMeilisearchOlderThanV12(t *testing.T) {
	s := newShop(t)
	p := s.create("Kettle")
	s.unsync(p)
	before := s.ids()
	for _, tc := range []struct {
		name, version string
		says          string // what the error must say
	}{
		{"1.1.2", "1.1.2", "Meilisearch 1.1.2 is older than 1.2.0"},
		{"0.30.5", "0.30.5", "Meilisearch 0.30.5 is older than 1.2.0"},
		{"1.2.0-rc.1", "1.2.0-rc.1", "Meilisearch 1.2.0-rc.1 is older than 1.2.0"},
		{"empty", "", "no pkgVersion"},
		{"not a version", "nightly", `pkgVersion "nightly", not a version`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.fake.SetVersion(tc.version)
			requests := s.recordRequests(t, nil)
			out, err := s.run()
			if err == nil || !strings.Contains(err.Error(), tc.says) || !errors.Is(err, meili.ErrVersionRefused) {
				t.Errorf("reindex: %v (output %q), want it refused saying %q", err, out, tc.says)
			}
			if !strings.Contains(out, "pushed 0 product(s) (0 pushed again, changed meanwhile), deleted 0 document(s)") {
				t.Errorf("output %q, want nothing pushed or deleted", out)
			}
			if diff := cmp.Diff([]string{"GET /version"}, requests()); diff != "" {
				t.Errorf("requests of the refused run (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, s.ids()); diff != "" {
				t.Errorf("index ids after the refused run (-want +got):\n%s", diff)
			}
		})
	}
	s.fake.SetVersion(meilitest.DefaultVersion)
	if out, err := s.run(); err != nil {
		t.Fatalf("reindex against Meilisearch %s: %v (output %q)", meilitest.DefaultVersion, err, out)
	}
	if diff := cmp.Diff(sorted(p), s.ids()); diff != "" {
		t.Errorf("index ids after the run (-want +got):\n%s", diff)
	}
}

// A key without the "version" action (Meilisearch answers its GET /version
// 403, as to every meili-key made before the action was asked for) is not
// refused: the run warns once on stderr, naming the action and the
// guide's step that adds it, never the key, and goes on, checking the
// listing's filter itself once the settings are applied. Against
// Meilisearch 1.1 (whose listing refuses the filter parameter, 400
// bad_request), and against a listing that ignores the filter (the fake's
// IgnoreListingFilter, as a 0.x might), it fails at that check, before
// any push or deletion: the stale document stays, a live product's
// missing document stays missing, no document is pushed, no DELETE sent
// (until a review of 2026-12-06 every product was pushed against 1.1
// before its first listing failed, and an ignored filter was not seen),
// and no settings update either (the check ran after it until a later
// review). Against 1.2 the same key's run warns and rebuilds the index.
func TestAKeyWithoutTheVersionActionOnlyWarns(t *testing.T) {
	s := newShop(t)
	p := s.create("Kettle")
	ghost := s.unsync(p)
	reqs := s.forbidVersion(t)
	checkWarned := func(warned string) {
		t.Helper()
		if strings.Count(warned, "warning") != 1 || !strings.Contains(warned, `"version" action`) ||
			!strings.Contains(warned, "step 7, item 11") || strings.Contains(warned, key) {
			t.Errorf("stderr %q, want one warning naming the version action and step 7, item 11, not the key", warned)
		}
	}

	for _, tc := range []struct {
		name, version string
		ignore        bool
		says          string // what the error must say
	}{
		{"Meilisearch 1.1.2", "1.1.2", false, "Unknown parameter `filter`"},
		{"a listing that ignores the filter", meilitest.DefaultVersion, true, "ignored the filter"},
	} {
		s.fake.SetVersion(tc.version)
		s.fake.IgnoreListingFilter(tc.ignore)
		from := len(reqs())
		out, warned, err := s.runWarned()
		if err == nil || !strings.Contains(err.Error(), tc.says) || !errors.Is(err, meili.ErrVersionRefused) {
			t.Errorf("reindex against %s: %v (output %q), want it refused saying %q", tc.name, err, out, tc.says)
		}
		checkWarned(warned)
		if !strings.Contains(out, "pushed 0 product(s) (0 pushed again, changed meanwhile), deleted 0 document(s)") {
			t.Errorf("reindex against %s: output %q, want nothing pushed or deleted", tc.name, out)
		}
		if diff := cmp.Diff(sorted(catalog.Product{ID: ghost}), s.ids()); diff != "" {
			t.Errorf("index ids after the run against %s (-want +got):\n%s", tc.name, diff)
		}
		got := reqs()[from:]
		if len(got) == 0 || got[0] != "GET /version" || !strings.HasPrefix(got[len(got)-1], "GET /indexes/products/documents?") ||
			!strings.Contains(got[len(got)-1], "filter=bucket") {
			t.Errorf("reindex against %s: requests %q, want GET /version first and the filter's check last", tc.name, got)
		}
		for _, r := range got {
			if strings.HasPrefix(r, "DELETE ") || strings.HasPrefix(r, "POST ") || strings.HasPrefix(r, "PUT ") ||
				strings.HasPrefix(r, "PATCH ") {
				t.Errorf("reindex against %s sent %s (a refused server gets no change, settings included)", tc.name, r)
			}
		}
	}
	s.fake.IgnoreListingFilter(false)

	s.fake.SetVersion(meilitest.DefaultVersion)
	out, warned, err := s.runWarned()
	if err != nil {
		t.Fatalf("reindex against Meilisearch %s: %v (output %q)", meilitest.DefaultVersion, err, out)
	}
	checkWarned(warned)
	if diff := cmp.Diff(sorted(p), s.ids()); diff != "" {
		t.Errorf("index ids after the run against %s (-want +got):\n%s", meilitest.DefaultVersion, diff)
	}
}

// On an empty index (a Meilisearch that lost its data) the first check of
// the listing's filter sees no document, whether the filter is applied or
// ignored: with the version unchecked the run checks again once its first
// batch is pushed, and fails there, naming the ignored filter, before any
// listing or deletion (until a review of 2026-12-06 it went on and failed
// at its listing of the documents without a bucket, blaming a writer of an
// older release).
func TestAnIgnoredFilterIsSeenOnAnEmptyIndex(t *testing.T) {
	s := newShop(t)
	s.create("Kettle")
	s.create("Teapot")
	s.fake.Lose()
	reqs := s.forbidVersion(t)
	s.fake.IgnoreListingFilter(true)
	t.Cleanup(func() { s.fake.IgnoreListingFilter(false) })
	out, _, err := s.runWarned()
	if err == nil || !errors.Is(err, meili.ErrVersionRefused) || !strings.Contains(err.Error(), "ignored the filter") ||
		strings.Contains(err.Error(), "older release") {
		t.Errorf("reindex against an empty index whose listing ignores the filter: %v (output %q), want it refused "+
			"for the ignored filter", err, out)
	}
	for _, r := range reqs() {
		if strings.HasPrefix(r, "DELETE ") || strings.Contains(r, "NOT+EXISTS") || strings.Contains(r, "NOT%20EXISTS") {
			t.Errorf("reindex against an empty index whose listing ignores the filter sent %s after the refusal", r)
		}
	}

	// A listing that filters, from no index at all (the check, now before
	// the settings, is answered index_not_found) and from an index whose
	// bucket is not filterable yet (invalid_document_filter): both pass,
	// and the run rebuilds the index.
	s.fake.IgnoreListingFilter(false)
	for _, bare := range []bool{false, true} {
		s.fake.Lose()
		if bare {
			if err := s.ix.Upsert(context.Background(), search.Document{ID: uuid.Must(uuid.NewV7()), SKU: "GHOST", Name: "Gone",
				Category: "kitchen", Price: catalog.Money{Amount: 1, Currency: "USD"}}); err != nil {
				t.Fatal(err)
			}
		}
		if out, _, err := s.runWarned(); err != nil {
			t.Errorf("reindex against a lost index (a document without the settings %v): %v (output %q)", bare, err, out)
		}
		if got := len(s.ids()); got != 2 {
			t.Errorf("reindex against a lost index (a document without the settings %v): %d documents, want the 2 products", bare, got)
		}
	}
}

// The check after the first push fails the run only after the page's
// changed products are pushed again: a writer's newer push that the batch,
// read before it, overwrote is not left overwritten (until a review of
// 2026-12-06 the run returned at the failed check first).
func TestAFailedCheckAfterTheFirstPushLeavesNoOlderRow(t *testing.T) {
	s := newShop(t)
	p := s.create("Kettle")
	s.fake.Lose()
	s.fake.IgnoreListingFilter(true)
	t.Cleanup(func() { s.fake.IgnoreListingFilter(false) })
	var once sync.Once
	s.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/version" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"message":"The provided API key is invalid.","code":"invalid_api_key","type":"auth"}`)
			return true
		}
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/documents") {
			return false
		}
		answered := false
		// This runs on the server's goroutine: t.Error, not t.Fatal.
		once.Do(func() {
			s.setIntercept(nil)
			if _, err := s.tryUpdate(p.ID, "Kettle, red", false); err != nil {
				t.Errorf("the concurrent write: %v", err)
			}
			// The batch, read before the write, lands after its push.
			s.fake.ServeHTTP(w, r)
			answered = true
		})
		return answered
	})
	t.Cleanup(func() { s.setIntercept(nil) })
	out, _, err := s.runWarned()
	if !errors.Is(err, meili.ErrVersionRefused) || !strings.Contains(err.Error(), "after the first push") {
		t.Fatalf("reindex against an empty index whose listing ignores the filter: %v (output %q), want it refused after the first push", err, out)
	}
	if d, ok := s.fake.Document("products", p.ID.String()); !ok || d["name"] != "Kettle, red" {
		t.Errorf("document %v, want the edit's name %q", d, "Kettle, red")
	}
}

// Arguments are refused with the usage, before anything is contacted.
func TestArgumentsAreRefusedWithTheUsage(t *testing.T) {
	err := run(context.Background(), []string{"now"}, config.Env(nil), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "usage:") {
		t.Fatalf("err %v, want the usage", err)
	}
}

// TestHelpPrintsTheUsageAndSucceeds: -h (also -help, --help) is a request
// for the usage, not a mistake: it prints it to stdout and ends without an
// error (exit 0, as flag.ErrHelp), before anything is contacted, where it
// was refused as an argument (exit 1).
func TestHelpPrintsTheUsageAndSucceeds(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{arg}, config.Env(nil), &out, &bytes.Buffer{}); err != nil {
			t.Errorf("%s: err %v, want none", arg, err)
		}
		if !strings.Contains(out.String(), "usage:") || !strings.Contains(out.String(), "MEILI_URL") {
			t.Errorf("%s printed %q, want the usage", arg, out.String())
		}
	}
}

// Every session of the pool the command reads through (openReadOnly, what
// run opens) is read-only: a write in it fails with
// read_only_sql_transaction, in both spellings of the URL.
func TestTheDatabaseSessionIsReadOnly(t *testing.T) {
	s := newShop(t)
	cc, err := pgx.ParseConfig(s.url)
	if err != nil {
		t.Fatal(err)
	}
	kv := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", cc.Host, cc.Port, cc.User, cc.Database)
	for _, raw := range []string{s.url, kv} {
		env := maps.Clone(s.env)
		env["CATALOG_DATABASE_URL"] = raw
		c := config.New(config.Env(env))
		dbc := postgres.ConfigFrom(c, "catalog", nil)
		if err := c.Err(); err != nil {
			t.Fatal(err)
		}
		pool, err := openReadOnly(context.Background(), dbc, "CATALOG_DATABASE_URL")
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		_, err = pool.Exec(context.Background(), `UPDATE products SET name = name`)
		pool.Close()
		if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "25006" {
			t.Errorf("%s: a write answered %v, want read_only_sql_transaction (25006)", raw, err)
		}
	}
}

// A session that is not read-only (as behind a pooler that drops the
// default_transaction_read_only startup parameter) is refused before
// anything is read.
func TestAWritableSessionIsRefused(t *testing.T) {
	s := newShop(t)
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: s.url, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := checkReadOnly(context.Background(), pool, "CATALOG_DATABASE_URL"); err == nil || !strings.Contains(err.Error(), "not read-only") {
		t.Errorf("checkReadOnly of a writable session = %v, want it refused as not read-only", err)
	}
}

// A catalog whose schema_migrations lacks a migration this binary knows (a
// release's reindex run before its writers migrated) is refused with
// postgres.ErrNotMigrated naming the file, before anything is pushed, and
// the migration is not applied; once the record is back, the run rebuilds.
func TestAReindexOfACatalogBehindItsMigrationsIsRefused(t *testing.T) {
	s := newShop(t)
	p := s.create("Kettle")
	s.fake.Lose()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var version int64
	var newest string
	if err := conn.QueryRow(ctx, `DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)
		RETURNING version, name`).Scan(&version, &newest); err != nil {
		t.Fatal(err)
	}
	out, err := s.run()
	if !errors.Is(err, postgres.ErrNotMigrated) || !strings.Contains(err.Error(), newest) {
		t.Fatalf("reindex of a catalog without %s: %v (output %q), want ErrNotMigrated naming it", newest, err, out)
	}
	if ids := s.ids(); len(ids) != 0 {
		t.Errorf("documents pushed by a refused run: %v", ids)
	}
	var applied bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM schema_migrations WHERE name = $1)`, newest).Scan(&applied); err != nil || applied {
		t.Errorf("the refused run recorded %s (%v)", newest, err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, version, newest); err != nil {
		t.Fatal(err)
	}
	if out, err := s.run(); err != nil {
		t.Fatalf("reindex of the migrated catalog: %v (output %q)", err, out)
	}
	if diff := cmp.Diff(sorted(p), s.ids()); diff != "" {
		t.Errorf("index ids (-want +got):\n%s", diff)
	}
}

// With CATALOG_READER_DATABASE_URL set, the command reads the catalog as
// the readers' role, with db-password-catalog-reader, and needs neither
// CATALOG_DATABASE_URL nor the owner's password: a role that may read
// nothing is refused the listing (so the run did log in as that role), the
// same role granted SELECT on the products, as 0008_reader_grants.sql
// grants shop_catalog_reader, rebuilds the index; a writer's URL set beside
// it, to a database that does not exist, is not used. Its sessions stay
// read-only.
func TestAReindexReadsAsTheReadersRoleWhenItsURLIsSet(t *testing.T) {
	s := newShop(t)
	p := s.create("Kettle")
	s.fake.Lose()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, s.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	role, password := "reindex_reader_"+strings.ReplaceAll(uuid.NewString()[:13], "-", ""), uuid.NewString()
	if _, err := admin.Exec(ctx, `CREATE ROLE `+role+` LOGIN PASSWORD '`+password+`'`); err != nil {
		t.Fatal(err)
	}
	// As 0008_reader_grants.sql grants shop_catalog_reader, for the check
	// that the database is migrated.
	if _, err := admin.Exec(ctx, `GRANT SELECT ON schema_migrations TO `+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Before the database is dropped (pgtest's cleanup, registered
		// first, runs last): the role's grants there, then the role.
		ctx := context.Background()
		_, _ = admin.Exec(ctx, `SELECT pg_terminate_backend(pid, 2000) FROM pg_stat_activity WHERE usename = $1`, role)
		_, _ = admin.Exec(ctx, `DROP OWNED BY `+role)
		_, _ = admin.Exec(ctx, `DROP ROLE IF EXISTS `+role)
	})
	cc, err := pgx.ParseConfig(s.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.env["SECRETS_DIR"], postgres.ReaderPasswordSecret("catalog")), []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	s.env[postgres.ReaderURLVar("catalog")] = fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", role, cc.Host, cc.Port, cc.Database)
	s.env["CATALOG_DATABASE_URL"] = fmt.Sprintf("postgres://%s@%s:%d/%s_missing?sslmode=disable", cc.User, cc.Host, cc.Port, cc.Database)

	if out, err := s.run(); !strings.Contains(fmt.Sprint(err), "permission denied for table products") {
		t.Fatalf("reindex as %s, which may read nothing: %v (output %q), want permission denied for table products", role, err, out)
	}
	if _, err := admin.Exec(ctx, `GRANT SELECT ON products TO `+role); err != nil {
		t.Fatal(err)
	}
	out, err := s.run()
	if err != nil {
		t.Fatalf("reindex as %s, granted SELECT on products: %v (output %q)", role, err, out)
	}
	if diff := cmp.Diff(sorted(p), s.ids()); diff != "" {
		t.Errorf("index ids (-want +got):\n%s", diff)
	}

	delete(s.env, "CATALOG_DATABASE_URL")
	c := config.New(config.Env(s.env))
	dbc := postgres.ReaderConfigFrom(c, "catalog", nil)
	if err := c.Err(); err != nil {
		t.Fatalf("the readers' settings without CATALOG_DATABASE_URL: %v", err)
	}
	pool, err := openReadOnly(ctx, dbc, urlVar(dbc))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var user, readOnly string
	if err := pool.QueryRow(ctx, `SELECT current_user, current_setting('transaction_read_only')`).Scan(&user, &readOnly); err != nil || user != role || readOnly != "on" {
		t.Errorf("the session: user %q, transaction_read_only %q (%v), want %s, on", user, readOnly, err, role)
	}
}
