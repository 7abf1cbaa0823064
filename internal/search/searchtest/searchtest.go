// Package searchtest is the behaviour suite every search.Index must pass, so the
// embedded PostgreSQL backend and the Meilisearch adapter answer alike.
package searchtest

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/search"
)

// NewIndex returns an empty index for one subtest, cleaned up by t.Cleanup.
type NewIndex func(t *testing.T) search.Index

func ptr[T any](v T) *T { return &v }

type fixture struct {
	headphones, earbuds, speaker, lamp, cable search.Document
	all                                       []search.Document
}

func doc(name, desc, category string, price, sold int64, inStock bool) search.Document {
	return search.Document{ID: uuid.Must(uuid.NewV7()), SKU: "SKU-" + uuid.NewString()[:8], Name: name,
		Description: desc, Category: category, Price: catalog.Money{Amount: price, Currency: "USD"},
		SoldCount: sold, InStock: inStock}
}

func seed(t *testing.T, ix search.Index) fixture {
	t.Helper()
	f := fixture{
		headphones: doc("Studio Headphones", "Closed-back monitoring for the studio", "audio", 12999, 40, true),
		earbuds:    doc("Wireless Earbuds", "Tiny, with a charging case", "audio", 5999, 90, false),
		speaker:    doc("Bluetooth Speaker", "Loud enough for a garden party", "audio", 8999, 10, true),
		lamp:       doc("Desk Lamp", "Warm light that pairs well with your headphones", "home", 2999, 5, true),
		cable:      doc("Braided Cable", "Two metres, USB-C", "accessories", 999, 200, false),
	}
	f.all = []search.Document{f.headphones, f.earbuds, f.speaker, f.lamp, f.cable}
	if err := ix.EnsureSettings(context.Background()); err != nil {
		t.Fatalf("EnsureSettings: %v", err)
	}
	if err := ix.EnsureSettings(context.Background()); err != nil {
		t.Fatalf("EnsureSettings is not idempotent: %v", err)
	}
	if err := ix.Upsert(context.Background(), f.all...); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	return f
}

func run(t *testing.T, ix search.Index, q search.Query) search.Result {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = search.DefaultLimit
	}
	if q.Sort == "" {
		q.Sort = search.SortRelevance
	}
	res, err := ix.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	return res
}

func ids(docs ...search.Document) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.ID)
	}
	return out
}

func names(docs []search.Document) []string {
	out := make([]string, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.Name)
	}
	return out
}

// Run runs the suite; newIndex gives every subtest its own empty index.
func Run(t *testing.T, newIndex NewIndex) {
	t.Run("misspelled word is found", func(t *testing.T) {
		ix := newIndex(t)
		f := seed(t, ix)
		res := run(t, ix, search.Query{Text: "hedphones", Category: "audio"})
		if diff := cmp.Diff(ids(f.headphones), ids(res.Hits...)); diff != "" {
			t.Errorf("hits (-want +got):\n%s names %v", diff, names(res.Hits))
		}
		res = run(t, ix, search.Query{Text: "wireles earbuds"})
		if diff := cmp.Diff(ids(f.earbuds), ids(res.Hits...)); diff != "" {
			t.Errorf("two words, one misspelled (-want +got):\n%s names %v", diff, names(res.Hits))
		}
	})
	t.Run("every word must match, in any field", func(t *testing.T) {
		ix := newIndex(t)
		f := seed(t, ix)
		res := run(t, ix, search.Query{Text: "garden party"})
		if diff := cmp.Diff(ids(f.speaker), ids(res.Hits...)); diff != "" {
			t.Errorf("description words (-want +got):\n%s", diff)
		}
		res = run(t, ix, search.Query{Text: "headphones xylophone"})
		if len(res.Hits) != 0 || res.Total != 0 {
			t.Errorf("an unmatched word must exclude every document, got %v", names(res.Hits))
		}
	})
	t.Run("words after the tenth are ignored", func(t *testing.T) {
		// Meilisearch takes the first search.MaxTerms (10) words of a query
		// and ignores the rest (its documented hard limit); the embedded
		// backend does the same, so a 200-character q of short words is 10
		// conditions there, not a hundred. Stop words and symbols, which are
		// no terms, do not count.
		ix := newIndex(t)
		seed(t, ix)
		long := doc("Aria Bluetooth Studio Monitor Headphones Walnut Brass Velvet Cushion Edition",
			"Ten words in its name", "audio", 45999, 1, true)
		if err := ix.Upsert(context.Background(), long); err != nil {
			t.Fatalf("Upsert: %v", err)
		}
		ten := "aria bluetooth studio monitor headphones walnut brass velvet cushion edition"
		for _, q := range []string{ten + " xylophone", "the " + ten + " — for xylophone marimba"} {
			res := run(t, ix, search.Query{Text: q})
			if diff := cmp.Diff(ids(long), ids(res.Hits...)); diff != "" || res.Total != 1 {
				t.Errorf("%q: total %d, hits (-want +got):\n%s names %v", q, res.Total, diff, names(res.Hits))
			}
		}
		// The first ten terms count, not any ten: an unmatched word among
		// them excludes the product.
		if res := run(t, ix, search.Query{Text: "xylophone " + ten}); res.Total != 0 || len(res.Hits) != 0 {
			t.Errorf("an unmatched first word must exclude every document, got %v", names(res.Hits))
		}
	})
	t.Run("stop words and symbols are ignored", func(t *testing.T) {
		// "for", "the", "a" are English stop words: the embedded backend's
		// full-text vector holds none of them, and a product need not
		// contain one to be what "speaker for the garden" asks for. A word
		// with no letter or digit ("—", "€", a lone "-") names nothing.
		ix := newIndex(t)
		f := seed(t, ix)
		for _, q := range []string{"speaker for garden", "the speaker", "speaker for the garden", "a bluetooth speaker",
			"speaker — garden", "speaker €", "speaker - garden", "speaker, garden!", "Speaker’s garden"} {
			res := run(t, ix, search.Query{Text: q})
			if diff := cmp.Diff(ids(f.speaker), ids(res.Hits...)); diff != "" || res.Total != 1 {
				t.Errorf("%q: total %d, hits (-want +got):\n%s names %v", q, res.Total, diff, names(res.Hits))
			}
		}
		if res := run(t, ix, search.Query{Text: "the xylophone"}); res.Total != 0 || len(res.Hits) != 0 {
			t.Errorf("a stop word beside an unmatched word must find nothing, got %v", names(res.Hits))
		}
	})
	t.Run("a query of symbols alone is an empty query", func(t *testing.T) {
		// A word with no letter or digit names nothing: nothing is left to
		// match, so every product (under the filters), as with an empty q,
		// never nothing.
		ix := newIndex(t)
		f := seed(t, ix)
		all := map[string]map[string]int{"category": {"audio": 3, "home": 1, "accessories": 1}}
		for _, q := range []string{"—", "€ — -", "--", "’ !"} {
			res := run(t, ix, search.Query{Text: q})
			if res.Total != 5 || len(res.Hits) != 5 {
				t.Errorf("%q: total %d, %d hits; want 5 and 5", q, res.Total, len(res.Hits))
			}
			if diff := cmp.Diff(all, res.Facets); diff != "" {
				t.Errorf("%q: facets (-want +got):\n%s", q, diff)
			}
		}
		res := run(t, ix, search.Query{Text: "—", Category: "home"})
		if diff := cmp.Diff(ids(f.lamp), ids(res.Hits...)); diff != "" || res.Total != 1 {
			t.Errorf("with a filter: total %d, hits (-want +got):\n%s", res.Total, diff)
		}
	})
	t.Run("a query of stop words alone matches them as words", func(t *testing.T) {
		// With no other word a stop word is what the query asks for: a
		// product named "The Who", a sku "IT". The embedded backend matches
		// it in the sku (simple configuration) and in name, category and sku
		// (trigram words), not in the description (english configuration,
		// which holds no stop word), so these documents hold none in theirs.
		ix := newIndex(t)
		if err := ix.EnsureSettings(context.Background()); err != nil {
			t.Fatalf("EnsureSettings: %v", err)
		}
		mk := func(sku, name, category string) search.Document {
			d := doc(name, "Plain", category, 1000, 0, true)
			d.SKU = sku
			return d
		}
		who, it := mk("WHO-1", "The Who", "music"), mk("IT", "Book", "books")
		kettle, lamp := mk("K-1", "Kettle", "kitchen"), mk("L-1", "Lamp", "home")
		if err := ix.Upsert(context.Background(), who, it, kettle, lamp); err != nil {
			t.Fatalf("Upsert: %v", err)
		}
		for _, c := range []struct {
			q    string
			want search.Document
		}{{"the who", who}, {"who", who}, {"The Who", who}, {"the — who", who}, {"it", it}, {"IT", it}} {
			res := run(t, ix, search.Query{Text: c.q})
			if diff := cmp.Diff(ids(c.want), ids(res.Hits...)); diff != "" || res.Total != 1 {
				t.Errorf("%q: total %d, hits (-want +got):\n%s names %v", c.q, res.Total, diff, names(res.Hits))
			}
		}
		// A stop word beside another word is still ignored: "the kettle"
		// is "kettle", though no product holds "the" beside it.
		res := run(t, ix, search.Query{Text: "the kettle"})
		if diff := cmp.Diff(ids(kettle), ids(res.Hits...)); diff != "" || res.Total != 1 {
			t.Errorf("the kettle: total %d, hits (-want +got):\n%s", res.Total, diff)
		}
		// Stop words that no product holds find nothing, as any word.
		for _, q := range []string{"of", "for a", "because"} {
			if res := run(t, ix, search.Query{Text: q}); res.Total != 0 || len(res.Hits) != 0 {
				t.Errorf("%q: total %d, hits %v; want none", q, res.Total, names(res.Hits))
			}
		}
		if res := run(t, ix, search.Query{Text: "who", Category: "home"}); res.Total != 0 || len(res.Hits) != 0 {
			t.Errorf("who in home: total %d, hits %v; want none", res.Total, names(res.Hits))
		}
	})
	t.Run("name matches rank above description matches", func(t *testing.T) {
		ix := newIndex(t)
		f := seed(t, ix)
		res := run(t, ix, search.Query{Text: "headphones"})
		if diff := cmp.Diff(ids(f.headphones, f.lamp), ids(res.Hits...)); diff != "" {
			t.Errorf("hits (-want +got):\n%s names %v", diff, names(res.Hits))
		}
	})
	t.Run("empty query matches everything, total and facets", func(t *testing.T) {
		ix := newIndex(t)
		seed(t, ix)
		res := run(t, ix, search.Query{})
		if res.Total != 5 || len(res.Hits) != 5 {
			t.Errorf("total %d, %d hits; want 5 and 5", res.Total, len(res.Hits))
		}
		want := map[string]map[string]int{"category": {"audio": 3, "home": 1, "accessories": 1}}
		if diff := cmp.Diff(want, res.Facets); diff != "" {
			t.Errorf("facets (-want +got):\n%s", diff)
		}
	})
	t.Run("filters", func(t *testing.T) {
		ix := newIndex(t)
		f := seed(t, ix)
		cases := []struct {
			name   string
			q      search.Query
			want   []search.Document
			facets map[string]int
		}{
			{"category", search.Query{Category: "audio", Sort: search.SortPriceAsc}, []search.Document{f.earbuds, f.speaker, f.headphones}, map[string]int{"audio": 3}},
			{"price range", search.Query{MinPrice: ptr[int64](2999), MaxPrice: ptr[int64](8999), Sort: search.SortPriceAsc}, []search.Document{f.lamp, f.earbuds, f.speaker}, map[string]int{"home": 1, "audio": 2}},
			{"in stock", search.Query{InStock: ptr(true), Sort: search.SortPriceAsc}, []search.Document{f.lamp, f.speaker, f.headphones}, map[string]int{"home": 1, "audio": 2}},
			{"out of stock audio", search.Query{InStock: ptr(false), Category: "audio", Sort: search.SortPriceAsc}, []search.Document{f.earbuds}, map[string]int{"audio": 1}},
			{"text and filter", search.Query{Text: "headphones", Category: "home"}, []search.Document{f.lamp}, map[string]int{"home": 1}},
			{"nothing", search.Query{Category: "garden"}, nil, map[string]int{}},
		}
		for _, c := range cases {
			res := run(t, ix, c.q)
			if diff := cmp.Diff(ids(c.want...), ids(res.Hits...)); diff != "" {
				t.Errorf("%s: hits (-want +got):\n%s names %v", c.name, diff, names(res.Hits))
			}
			if res.Total != len(c.want) {
				t.Errorf("%s: total %d, want %d", c.name, res.Total, len(c.want))
			}
			if diff := cmp.Diff(map[string]map[string]int{"category": c.facets}, res.Facets); diff != "" {
				t.Errorf("%s: facets (-want +got):\n%s", c.name, diff)
			}
		}
	})
	t.Run("sort and paging", func(t *testing.T) {
		ix := newIndex(t)
		f := seed(t, ix)
		cases := []struct {
			q    search.Query
			want []search.Document
		}{
			{search.Query{Sort: search.SortPriceAsc}, []search.Document{f.cable, f.lamp, f.earbuds, f.speaker, f.headphones}},
			{search.Query{Sort: search.SortPriceDesc}, []search.Document{f.headphones, f.speaker, f.earbuds, f.lamp, f.cable}},
			{search.Query{Sort: search.SortPopularity}, []search.Document{f.cable, f.earbuds, f.headphones, f.speaker, f.lamp}},
			{search.Query{Sort: search.SortPriceAsc, Limit: 2, Offset: 2}, []search.Document{f.earbuds, f.speaker}},
			{search.Query{Sort: search.SortPriceAsc, Limit: 2, Offset: 4}, []search.Document{f.headphones}},
		}
		for _, c := range cases {
			res := run(t, ix, c.q)
			if diff := cmp.Diff(ids(c.want...), ids(res.Hits...)); diff != "" {
				t.Errorf("%+v (-want +got):\n%s names %v", c.q, diff, names(res.Hits))
			}
			if res.Total != 5 {
				t.Errorf("%+v: total %d, want 5", c.q, res.Total)
			}
		}
	})
	t.Run("pages past the thousandth match", func(t *testing.T) {
		// Meilisearch answers no hit past maxTotalHits (1,000 by default)
		// unless the index's settings raise it: the API allows offsets up
		// to search.MaxOffset.
		ix := newIndex(t)
		if err := ix.EnsureSettings(context.Background()); err != nil {
			t.Fatal(err)
		}
		docs := make([]search.Document, 1100)
		for i := range docs {
			docs[i] = doc(fmt.Sprintf("Widget %04d", i), "", "parts", int64(100+i), 0, true)
		}
		if err := ix.Upsert(context.Background(), docs...); err != nil {
			t.Fatal(err)
		}
		res := run(t, ix, search.Query{Sort: search.SortPriceAsc, Limit: 20, Offset: 1050})
		if diff := cmp.Diff(ids(docs[1050:1070]...), ids(res.Hits...)); diff != "" {
			t.Errorf("page at offset 1050 (-want +got):\n%s", diff)
		}
		if res.Total != 1100 {
			t.Errorf("total %d, want 1100", res.Total)
		}
	})
	t.Run("search follows updates and deletes", func(t *testing.T) {
		ix := newIndex(t)
		f := seed(t, ix)
		renamed := f.speaker
		renamed.Name = "Party Boombox"
		renamed.Price.Amount = 100
		if err := ix.Upsert(context.Background(), renamed); err != nil {
			t.Fatal(err)
		}
		if res := run(t, ix, search.Query{Text: "bluetooth"}); len(res.Hits) != 0 {
			t.Errorf("old name still found: %v", names(res.Hits))
		}
		res := run(t, ix, search.Query{Text: "boombox"})
		if diff := cmp.Diff([]search.Document{renamed}, res.Hits); diff != "" {
			t.Errorf("new name (-want +got):\n%s", diff)
		}
		if err := ix.Delete(context.Background(), f.headphones.ID); err != nil {
			t.Fatal(err)
		}
		if err := ix.Delete(context.Background(), f.headphones.ID); err != nil {
			t.Fatalf("deleting twice must succeed: %v", err)
		}
		res = run(t, ix, search.Query{Text: "headphones"})
		if diff := cmp.Diff(ids(f.lamp), ids(res.Hits...)); diff != "" {
			t.Errorf("deleted document still found (-want +got):\n%s", diff)
		}
		if res := run(t, ix, search.Query{}); res.Total != 4 {
			t.Errorf("total after delete %d, want 4", res.Total)
		}
	})
}
