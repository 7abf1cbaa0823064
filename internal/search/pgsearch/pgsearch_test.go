package pgsearch_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/pgsearch"
	"github.com/shopfaas/shop/internal/search/searchtest"
)

// The embedded backend passes the shared behaviour suite on the real server.
func TestSuite(t *testing.T) {
	searchtest.Run(t, func(t *testing.T) search.Index {
		return pgsearch.New(pgtest.Open(t, catalogdb.Migrations()))
	})
}

// TestStopWordsAreTheEnglishConfigurations: search.IsStopWord knows exactly
// the stop words of PostgreSQL's english configuration, which its vectors
// leave out. A word it knows that PostgreSQL indexes would be ignored beside
// another word by both backends though the embedded one could match it in
// the description; a stop word it does not know would be kept beside another
// word, a condition only a product holding it in name, category or sku meets
// (the simple configuration and the trigram words), so "speaker for the
// garden" would find nearly nothing, as it did before search.Terms.
func TestStopWordsAreTheEnglishConfigurations(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.Open(t, catalogdb.Migrations())
	// The server's own list (pg_read_file needs a superuser, as the tests'
	// default role is).
	var file string
	err := pool.QueryRow(ctx, `SELECT pg_read_file((SELECT setting FROM pg_config WHERE name = 'SHAREDIR') ||
		'/tsearch_data/english.stop')`).Scan(&file)
	if err != nil {
		t.Fatalf("reading the server's english.stop (the test's role must be a superuser): %v", err)
	}
	want := strings.Fields(file)
	slices.Sort(want)
	if diff := cmp.Diff(slices.Compact(want), search.StopWords()); diff != "" {
		t.Errorf("stop words (-postgresql +search.StopWords):\n%s", diff)
	}
	for _, w := range search.StopWords() {
		var n int
		if err := pool.QueryRow(ctx, `SELECT numnode(plainto_tsquery('english', $1))`, w).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%q: the english configuration makes %d query nodes of it, want none (a stop word)", w, n)
		}
	}
}
