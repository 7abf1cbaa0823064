package pgsearch_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/pgsearch"
)

// A search reads the documents that match its words, not the catalog: among
// 3,000 documents, three headphones (found by their word, by a typo of it and
// with another word of their name) and a kettle in every tenth. The words
// unnested into one NOT EXISTS, as before, could use no index: every search
// read all 3,000 documents twice (facets and hits) and computed
// word_similarity for each. A query's symbols, and its stop words beside
// another word, add no condition, so they cost no read. On a table never analyzed (this machine runs with
// autovacuum off) and on one analyzed.
func TestSearchReadsTheDocumentsThatMatch(t *testing.T) {
	for _, analyzed := range []bool{false, true} {
		t.Run(fmt.Sprintf("analyzed=%v", analyzed), func(t *testing.T) {
			ctx := context.Background()
			pool := pgtest.Open(t, catalogdb.Migrations())
			if err := pgsearch.UpsertTx(ctx, pool, documents(3000)...); err != nil {
				t.Fatal(err)
			}
			if analyzed {
				if _, err := pool.Exec(ctx, `ANALYZE search_documents`); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct {
				q    string
				want int
			}{{"headphones", 3}, {"hedphones", 3}, {"aria headphones", 3}, {"kettle", 300}, {"ketle", 300},
				// Symbols, and stop words beside a word, are no conditions (search.Terms): the
				// same index-backed reads as the words alone.
				{"the headphones", 3}, {"headphones with — €", 3}, {"a kettle for the", 300}} {
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				before := pgtest.RowsRead(t, tx, "search_documents")
				res := search.Result{Facets: map[string]map[string]int{"category": {}}}
				if err := tx.SendBatch(ctx, pgsearch.SearchBatch(search.Query{Text: c.q, Limit: 20}, &res)).Close(); err != nil {
					t.Fatalf("%q: %v", c.q, err)
				}
				read := pgtest.RowsRead(t, tx, "search_documents") - before
				_ = tx.Rollback(ctx)
				t.Logf("%q: %d documents found, %d hits, %d rows read", c.q, res.Total, len(res.Hits), read)
				if res.Total != c.want || len(res.Hits) != min(c.want, 20) {
					t.Errorf("%q: %d found, %d hits; want %d and %d", c.q, res.Total, len(res.Hits), c.want, min(c.want, 20))
				}
				// Facets and hits read the documents found, once each.
				if read > int64(2*c.want) {
					t.Errorf("%q read %d documents to find %d; want at most %d", c.q, read, c.want, 2*c.want)
				}
			}
		})
	}
}

// documents is n documents of made-up names: three are headphones, every
// tenth is a kettle, the rest share no word.
func documents(n int) []search.Document {
	docs := make([]search.Document, n)
	for i := range docs {
		name := fmt.Sprintf("Item q%x", i*7919)
		switch {
		case i < 3:
			name = fmt.Sprintf("Aria Wireless Headphones %d", i)
		case i%10 == 5:
			name = fmt.Sprintf("Steel Kettle q%x", i*7919)
		}
		docs[i] = search.Document{ID: uuid.New(), SKU: fmt.Sprintf("SKU-%d", i), Name: name, Category: "home",
			Description: "A product.", Price: catalog.Money{Amount: int64(100 + i), Currency: "USD"}}
	}
	return docs
}
