// Package pgsearch is the embedded search backend: the search_documents table
// of the catalog database (created by catalogdb's migrations), full-text
// matching with tsvector and typo tolerance with pg_trgm. It needs no service
// beyond PostgreSQL, and the catalog writes its documents in the same
// transaction as the product (UpsertTx, DeleteTx), so search never lags.
package pgsearch

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/search"
)

// Similarity is the pg_trgm word_similarity a query word needs with a
// document's name, category or sku to count as a typo of one of them
// ("hedphones" scores 0.62 against "headphones").
const Similarity = 0.5

// Execer is a pool or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Index searches the catalog database.
type Index struct {
	db *pgxpool.Pool
}

var _ search.Index = (*Index)(nil)

// New returns the index over the catalog database pool db.
func New(db *pgxpool.Pool) *Index { return &Index{db: db} }

// EnsureSettings checks that the schema is there (the migrations own it).
func (ix *Index) EnsureSettings(ctx context.Context) error {
	var ok bool
	err := ix.db.QueryRow(ctx, `SELECT to_regclass('search_documents') IS NOT NULL`).Scan(&ok)
	if err != nil {
		return fmt.Errorf("pgsearch: %w", err)
	}
	if !ok {
		return fmt.Errorf("pgsearch: table search_documents is missing (catalog migrations not applied)")
	}
	return nil
}

// Upsert writes docs outside any product transaction (reindexing).
func (ix *Index) Upsert(ctx context.Context, docs ...search.Document) error {
	return UpsertTx(ctx, ix.db, docs...)
}

// Delete removes a document; deleting a missing one is not an error.
func (ix *Index) Delete(ctx context.Context, id uuid.UUID) error {
	return DeleteTx(ctx, ix.db, id)
}

// upsertSQL writes a document ($1 id, $2 sku, $3 name, $4 description, $5
// category, $6 price amount, $7 currency, $8 sold count, $9 in stock) and its
// search text: tsv for full-text matching and ranking, words for pg_trgm typo
// tolerance (migration 0005: they were generated columns, computed again on
// every update). An existing document's text is computed only when the name,
// category, sku or description changed, so the usual write — a sale's
// sold_count, an in-stock flip — runs no to_tsvector. A new document is
// inserted by the same statement; the ON CONFLICT arm serves only a document
// inserted by a concurrent transaction after the UPDATE looked.
const upsertSQL = `WITH u AS (
	UPDATE search_documents d SET sku = $2, name = $3, description = $4, category = $5,
		price_amount = $6, price_currency = $7, sold_count = $8, in_stock = $9,
		tsv = CASE WHEN (d.name, d.category, d.sku, d.description) IS NOT DISTINCT FROM ($3::text, $5::text, $2::text, $4::text)
			THEN d.tsv ELSE ` + tsvSQL + ` END,
		words = CASE WHEN (d.name, d.category, d.sku) IS NOT DISTINCT FROM ($3::text, $5::text, $2::text)
			THEN d.words ELSE ` + wordsSQL + ` END
	WHERE d.id = $1 RETURNING 1)
INSERT INTO search_documents
	(id, sku, name, description, category, price_amount, price_currency, sold_count, in_stock, tsv, words)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, ` + tsvSQL + `, ` + wordsSQL + `
	WHERE NOT EXISTS (SELECT 1 FROM u)
	ON CONFLICT (id) DO UPDATE SET sku = EXCLUDED.sku, name = EXCLUDED.name,
		description = EXCLUDED.description, category = EXCLUDED.category,
		price_amount = EXCLUDED.price_amount, price_currency = EXCLUDED.price_currency,
		sold_count = EXCLUDED.sold_count, in_stock = EXCLUDED.in_stock, tsv = EXCLUDED.tsv, words = EXCLUDED.words`

// tsvSQL and wordsSQL are a document's search text from upsertSQL's
// parameters: the expressions of the generated columns of migration 0001.
const (
	tsvSQL = `setweight(to_tsvector('english'::regconfig, $3::text), 'A') ||
		setweight(to_tsvector('english'::regconfig, replace($5::text, '-', ' ')), 'B') ||
		setweight(to_tsvector('simple'::regconfig, $2::text), 'B') ||
		setweight(to_tsvector('english'::regconfig, $4::text), 'C')`
	wordsSQL = `lower($3::text || ' ' || replace($5::text, '-', ' ') || ' ' || $2::text)`
)

const deleteSQL = `DELETE FROM search_documents WHERE id = $1`

// UpsertTx writes docs on db (Index.Upsert; a product's own transaction queues
// QueueUpsert with its other writes).
func UpsertTx(ctx context.Context, db Execer, docs ...search.Document) error {
	for _, d := range docs {
		_, err := db.Exec(ctx, upsertSQL, d.ID, d.SKU, d.Name, d.Description, d.Category, d.Price.Amount, d.Price.Currency, d.SoldCount, d.InStock)
		if err != nil {
			return fmt.Errorf("pgsearch: upsert %s: %w", d.ID, err)
		}
	}
	return nil
}

// QueueUpsert adds UpsertTx's statement for d to b, for a caller that sends
// its transaction's other writes in the same batch (one round trip).
func QueueUpsert(b *pgx.Batch, d search.Document) {
	b.Queue(upsertSQL, d.ID, d.SKU, d.Name, d.Description, d.Category, d.Price.Amount, d.Price.Currency, d.SoldCount, d.InStock)
}

// QueueDelete adds DeleteTx's statement for id to b.
func QueueDelete(b *pgx.Batch, id uuid.UUID) {
	b.Queue(deleteSQL, id)
}

// DeleteTx removes the document of id on db (Index.Delete; the archiving
// transaction queues QueueDelete).
func DeleteTx(ctx context.Context, db Execer, id uuid.UUID) error {
	if _, err := db.Exec(ctx, deleteSQL, id); err != nil {
		return fmt.Errorf("pgsearch: delete %s: %w", id, err)
	}
	return nil
}

// match is the WHERE clause shared by the facet and the hit queries: $1 to $4
// are the filters, and the n query words (search.Terms: no symbol, no stop
// word unless all are) follow them, from $first. Every word
// must match the full-text vector (stemmed, or as it is) or be similar enough
// to a word of name, category or sku: pg_trgm's <%, word_similarity at least
// pg_trgm.word_similarity_threshold, which the search sets to Similarity.
// Each of a word's three conditions is one that the GIN indexes on tsv and
// words answer, so a search reads the documents that match, not the table.
// With the words unnested into one NOT EXISTS, as before, no index could
// serve them, and every search computed word_similarity for every document
// (docs/performance.md, item 38).
func match(n, first int) string {
	var b strings.Builder
	b.WriteString(`
	WHERE ($1 = '' OR d.category = $1)
	AND ($2::bigint IS NULL OR d.price_amount >= $2)
	AND ($3::bigint IS NULL OR d.price_amount <= $3)
	AND ($4::boolean IS NULL OR d.in_stock = $4)`)
	for i := range n {
		w := fmt.Sprintf("$%d::text", first+i)
		fmt.Fprintf(&b, `
	AND (d.tsv @@ plainto_tsquery('english', %[1]s) OR d.tsv @@ plainto_tsquery('simple', %[1]s) OR %[1]s <%% d.words)`, w)
	}
	return b.String()
}

// similarity is Similarity as set_config takes it.
var similarity = strconv.FormatFloat(Similarity, 'f', -1, 64)

// Search answers q with hits, total and category facets: one read-only
// transaction in one round trip (postgres.ReadTx), whose settings are local
// to it; it ends at ctx's deadline with ctx's error, however long a lock
// holds the table. The planner knows no cost
// of word_similarity, and for a word that one document in ten holds it chose
// a sequential scan that computes it for every document (438 ms on 50,000
// documents, against 9 ms through the indexes). So a search with words turns
// sequential scans off for its transaction, and plain index scans too: on a
// table never analyzed the facets walked the category index whole for their
// grouping.
func (ix *Index) Search(ctx context.Context, q search.Query) (search.Result, error) {
	res := search.Result{Hits: []search.Document{}, Facets: map[string]map[string]int{"category": {}}}
	if err := postgres.ReadTx(ctx, ix.db, searchBatch(q, &res)); err != nil {
		return search.Result{Hits: []search.Document{}, Facets: map[string]map[string]int{"category": {}}},
			fmt.Errorf("pgsearch: search: %w", err)
	}
	return res, nil
}

// searchBatch is Search's statements, which fill res as they are read: its
// settings (with words only), the facets and the hits. Search sends them as one transaction.
func searchBatch(q search.Query, res *search.Result) *pgx.Batch {
	// The terms, each once: a symbol would be a condition no document
	// meets, and a stop word beside another word one that only a product
	// holding it in name, category or sku meets (english vectors hold no
	// stop word), so they are none; a q of stop words alone keeps them.
	words := search.Terms(q.Text)
	// The first search.MaxTerms of them, as Meilisearch: each is three
	// conditions, and a 200-character q of short words made some 70 terms,
	// whose 210 conditions took PostgreSQL 65 ms to plan, twice.
	words = words[:min(len(words), search.MaxTerms)]
	// The filters are $1 to $4 of both queries, the hits' text (the terms),
	// limit and offset follow,
	// and the words come last (match).
	facetArgs := []any{q.Category, q.MinPrice, q.MaxPrice, q.InStock}
	hitArgs := append(slices.Clip(facetArgs), strings.Join(words, " "), q.Limit, q.Offset)
	facetWhere, hitWhere := match(len(words), len(facetArgs)+1), match(len(words), len(hitArgs)+1)
	for _, w := range words {
		facetArgs, hitArgs = append(facetArgs, w), append(hitArgs, w)
	}

	b := &pgx.Batch{}
	if len(words) > 0 {
		// The threshold of the words' <%, and bitmap scans only: of the GIN
		// indexes, for the words.
		b.Queue(`SELECT set_config('pg_trgm.word_similarity_threshold', $1, true)`, similarity)
		b.Queue(`SET LOCAL enable_seqscan = off`)
		b.Queue(`SET LOCAL enable_indexscan = off`)
	}
	b.Queue(`SELECT d.category, count(*) FROM search_documents d`+facetWhere+` GROUP BY d.category`, facetArgs...).Query(func(rows pgx.Rows) error {
		var cat string
		var n int
		_, err := pgx.ForEachRow(rows, []any{&cat, &n}, func() error {
			res.Facets["category"][cat] = n
			res.Total += n // every document has exactly one category
			return nil
		})
		if err != nil {
			return fmt.Errorf("facets: %w", err)
		}
		return nil
	})

	order := `relevance DESC, d.sold_count DESC, d.id DESC`
	switch q.Sort {
	case search.SortPriceAsc:
		order = `d.price_amount ASC, d.id DESC`
	case search.SortPriceDesc:
		order = `d.price_amount DESC, d.id DESC`
	case search.SortPopularity:
		order = `d.sold_count DESC, d.id DESC`
	}
	b.Queue(`SELECT d.id, d.sku, d.name, d.description, d.category, d.price_amount,
			d.price_currency, d.sold_count, d.in_stock,
			ts_rank(d.tsv, plainto_tsquery('english', $5)) + word_similarity($5, lower(d.name)) AS relevance
		FROM search_documents d`+hitWhere+` ORDER BY `+order+` LIMIT $6 OFFSET $7`, hitArgs...).Query(func(rows pgx.Rows) error {
		var d search.Document
		var relevance float64
		_, err := pgx.ForEachRow(rows, []any{&d.ID, &d.SKU, &d.Name, &d.Description, &d.Category, &d.Price.Amount,
			&d.Price.Currency, &d.SoldCount, &d.InStock, &relevance}, func() error {
			res.Hits = append(res.Hits, d)
			return nil
		})
		if err != nil {
			return fmt.Errorf("hits: %w", err)
		}
		return nil
	})
	return b
}
