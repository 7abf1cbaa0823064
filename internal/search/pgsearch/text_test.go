package pgsearch_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/pgsearch"
)

// textMatches is true when a document's tsv and words are what its name,
// category, sku and description make (the expressions of migration 0001's
// generated columns).
const textMatches = `SELECT tsv = setweight(to_tsvector('english'::regconfig, name), 'A') ||
		setweight(to_tsvector('english'::regconfig, replace(category, '-', ' ')), 'B') ||
		setweight(to_tsvector('simple'::regconfig, sku), 'B') ||
		setweight(to_tsvector('english'::regconfig, description), 'C')
	AND words = lower(name || ' ' || replace(category, '-', ' ') || ' ' || sku)
	FROM search_documents WHERE id = $1`

// TestSearchTextIsWrittenOnlyWhenItsTextChanges: a document's search text is
// computed when it is inserted and when its name, category, sku or
// description changes, and left as it is by a write of its counters (a sale,
// an in-stock flip), which used to run to_tsvector again on every update
// (generated columns; migration 0005). The test marks the stored text and
// sees a counter write keep the mark.
func TestSearchTextIsWrittenOnlyWhenItsTextChanges(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, catalogdb.Migrations())
	ix := pgsearch.New(pool)
	d := search.Document{ID: uuid.New(), SKU: "AUD-HP-001", Name: "Aria Wireless Headphones", Category: "audio-gear",
		Description: "Closed-back headphones with active noise cancelling.", Price: catalog.Money{Amount: 14999, Currency: "USD"}}
	matches := func(when string) {
		t.Helper()
		var ok bool
		if err := pool.QueryRow(ctx, textMatches, d.ID).Scan(&ok); err != nil || !ok {
			t.Fatalf("%s: the search text does not match the document (%v, %v)", when, ok, err)
		}
	}
	if err := ix.Upsert(ctx, d); err != nil {
		t.Fatal(err)
	}
	matches("inserted")

	if _, err := pool.Exec(ctx, `UPDATE search_documents SET tsv = 'marked'::tsvector, words = 'marked' WHERE id = $1`, d.ID); err != nil {
		t.Fatalf("mark the stored text: %v", err)
	}
	d.SoldCount, d.InStock, d.Price.Amount = 3, true, 12999
	if err := ix.Upsert(ctx, d); err != nil {
		t.Fatal(err)
	}
	var tsv, words string
	var sold int64
	var inStock bool
	if err := pool.QueryRow(ctx, `SELECT tsv::text, words, sold_count, in_stock FROM search_documents WHERE id = $1`, d.ID).
		Scan(&tsv, &words, &sold, &inStock); err != nil {
		t.Fatal(err)
	}
	if tsv != "'marked'" || words != "marked" {
		t.Errorf("a write of counters and price wrote the search text again: tsv %s, words %q", tsv, words)
	}
	if sold != 3 || !inStock {
		t.Errorf("sold_count %d, in_stock %v; want 3, true", sold, inStock)
	}

	// words is made of name, category and sku; tsv of those and the
	// description. So a new description leaves words marked.
	for _, tc := range []struct {
		change func(*search.Document)
		marks  string
	}{
		{func(d *search.Document) { d.Name = "Aria Studio Headphones" }, "tsv = 'marked'::tsvector, words = 'marked'"},
		{func(d *search.Document) { d.Category = "studio-audio" }, "tsv = 'marked'::tsvector, words = 'marked'"},
		{func(d *search.Document) { d.SKU = "AUD-HP-002" }, "tsv = 'marked'::tsvector, words = 'marked'"},
		{func(d *search.Document) { d.Description = "Open-back headphones." }, "tsv = 'marked'::tsvector"},
	} {
		if _, err := pool.Exec(ctx, `UPDATE search_documents SET `+tc.marks+` WHERE id = $1`, d.ID); err != nil {
			t.Fatal(err)
		}
		tc.change(&d)
		if err := ix.Upsert(ctx, d); err != nil {
			t.Fatal(err)
		}
		matches("changed to " + d.Name + " / " + d.Category + " / " + d.SKU + " / " + d.Description)
	}
	hits, err := ix.Search(ctx, search.Query{Text: "studio", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits.Hits) != 1 || hits.Hits[0].ID != d.ID {
		t.Errorf("search for the new name: %+v, want the document", hits.Hits)
	}
}

// TestSearchTextMigrationKeepsTheStoredText: migration 0005 turns the
// generated columns into plain ones and keeps every stored value.
func TestSearchTextMigrationKeepsTheStoredText(t *testing.T) {
	ctx := context.Background()
	all := catalogdb.Migrations()
	before := fstest.MapFS{}
	names, err := fs.Glob(all, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if name >= "0005" {
			continue
		}
		b, err := fs.ReadFile(all, name)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = &fstest.MapFile{Data: b}
	}
	pool := pgtest.Open(t, before)
	id := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO search_documents (id, sku, name, description, category, price_amount, price_currency)
		VALUES ($1, 'KIT-001', 'Enamel Mug', 'A mug.', 'kitchen', 1299, 'USD')`, id); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool, all); err != nil {
		t.Fatal(err)
	}
	var generated int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_attribute
		WHERE attrelid = 'search_documents'::regclass AND attname IN ('tsv', 'words') AND attgenerated <> ''`).Scan(&generated); err != nil {
		t.Fatal(err)
	}
	if generated != 0 {
		t.Errorf("%d search text column(s) still generated", generated)
	}
	var ok bool
	if err := pool.QueryRow(ctx, textMatches, id).Scan(&ok); err != nil || !ok {
		t.Errorf("the stored text after the migration does not match the document (%v, %v)", ok, err)
	}
}
