package function

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv/envtest"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/search"
)

func TestUpdate(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	admin := env.Token(t, "admin")
	p := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	env.Remember(t.Context(), p) // as a GET would have
	path := "/api/v1/products/" + p.ID.String()

	w := envtest.Do(t, h, http.MethodPatch, path, `{"name":"Reading Lamp","price":{"amount":3499},"description":null}`,
		"Authorization", admin, "If-Match", p.ETag())
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got catalog.Product
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := p
	want.Name, want.Price.Amount, want.Description, want.Version = "Reading Lamp", 3499, "", 2
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(catalog.Product{}, "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("patched product (-want +got):\n%s", diff)
	}
	if w.Header().Get("ETag") != got.ETag() || got.ETag() == p.ETag() {
		t.Errorf("ETag %q after update (before %q)", w.Header().Get("ETag"), p.ETag())
	}
	if _, _, ok := env.Cached(t.Context(), p.ID.String()); ok {
		t.Error("cache still holds the product after the update")
	}
	env.Remember(t.Context(), p) // a slow reader writes the old version back
	if _, _, ok := env.Cached(t.Context(), p.ID.String()); ok {
		t.Error("stale write-back stuck in the cache")
	}
	if n := env.OutboxCount(t, p.ID); n != 2 {
		t.Errorf("%d events, want 2 (create, update)", n)
	}
	res, err := env.Search.Search(t.Context(), search.Query{Text: "reading", Limit: 5, Sort: search.SortRelevance})
	if err != nil || len(res.Hits) != 1 || res.Hits[0].Price.Amount != 3499 {
		t.Errorf("search after update: %+v, %v", res, err)
	}

	// The old ETag no longer matches.
	w = envtest.Do(t, h, http.MethodPatch, path, `{"name":"Other"}`, "Authorization", admin, "If-Match", p.ETag())
	if w.Code != http.StatusPreconditionFailed {
		t.Errorf("stale If-Match: %d %s", w.Code, w.Body)
	}
}

// If-Match is RFC 9110's (§13.1.1): "*" or a comma-separated list of entity
// tags, on one field line or several, compared strongly — a tag matches only
// when it is exactly the product's current ETag, never when weak (W/), never
// when it merely holds the current tag or is held by it — and anything else
// is 412 with the product unchanged. So is a field sent with no tag in it
// (empty, whitespace, commas): an empty list, which matches nothing.
func TestIfMatchMatchesOnlyTheCurrentTagExactly(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	admin := env.Token(t, "admin")
	for i, c := range fntest.IfMatchCases() {
		t.Run(c.Name, func(t *testing.T) {
			p := env.Create(t, fmt.Sprintf("IFM-%d", i), "Desk Lamp", "home", 2999)
			r := httptest.NewRequest(http.MethodPatch, "/api/v1/products/"+p.ID.String(), strings.NewReader(`{"name":"Reading Lamp"}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", admin)
			for _, line := range c.Lines(p.ETag()) {
				r.Header.Add("If-Match", line)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			want, version := http.StatusPreconditionFailed, int64(1)
			if c.Holds {
				want, version = http.StatusOK, 2
			}
			if w.Code != want {
				t.Fatalf("If-Match %q on a product whose ETag is %s: %d, want %d: %s",
					r.Header.Values("If-Match"), p.ETag(), w.Code, want, w.Body)
			}
			if !c.Holds {
				pr := fntest.Problem(t, w, http.StatusPreconditionFailed, "precondition_failed")
				// An empty or malformed field is told apart from another version.
				if strings.Contains(pr.Detail, "names no entity tag") != c.NoTag {
					t.Errorf("If-Match %q: detail %q; want it to say the field names no entity tag: %v", r.Header.Values("If-Match"), pr.Detail, c.NoTag)
				}
			}
			if got, err := env.Store.Get(t.Context(), p.ID); err != nil || got.Version != version {
				t.Errorf("product after %d: version %d, %v; want %d", w.Code, got.Version, err, version)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	admin := env.Token(t, "admin")
	p := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	env.Create(t, "LAMP-2", "Floor Lamp", "home", 4999)
	path := "/api/v1/products/" + p.ID.String()
	cases := []struct {
		name, path, body, auth string
		status                 int
	}{
		{"no token", path, `{"name":"x"}`, "", http.StatusUnauthorized},
		{"customer", path, `{"name":"x"}`, env.Token(t, "customer"), http.StatusForbidden},
		{"unknown product", "/api/v1/products/0190f5a0-0000-7000-8000-000000000000", `{"name":"x"}`, admin, http.StatusNotFound},
		{"not a uuid", "/api/v1/products/abc", `{"name":"x"}`, admin, http.StatusNotFound},
		{"null name", path, `{"name":null}`, admin, http.StatusUnprocessableEntity},
		{"empty patch", path, `{}`, admin, http.StatusUnprocessableEntity},
		{"negative price", path, `{"price":{"amount":-1}}`, admin, http.StatusUnprocessableEntity},
		{"float price", path, `{"price":{"amount":1.5}}`, admin, http.StatusBadRequest},
		{"unknown field", path, `{"sold_count":100}`, admin, http.StatusBadRequest},
		{"sku taken", path, `{"sku":"LAMP-2"}`, admin, http.StatusConflict},
	}
	for _, c := range cases {
		w := envtest.Do(t, h, http.MethodPatch, c.path, c.body, "Authorization", c.auth)
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, w.Code, c.status, w.Body)
		}
	}
	got, err := env.Store.Get(t.Context(), p.ID)
	if err != nil || got.Version != 1 || got.Name != "Desk Lamp" {
		t.Errorf("refused patches changed the product: %+v %v", got, err)
	}
	if n := env.OutboxCount(t, p.ID); n != 1 {
		t.Errorf("%d events after refused patches, want 1", n)
	}
}

// TestRefusesABodyWithoutContentType: a body sent without a Content-Type is
// 400 unsupported_media_type, however JSON it looks, as on every operation
// that takes one, so a client that forgets the header learns it at once.
func TestRefusesABodyWithoutContentType(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	p := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	w := fntest.Do(t, New(env.Deps), http.MethodPatch, "/api/v1/products/"+p.ID.String(), "", `{"name":"x"}`, "Authorization", env.Token(t, "admin"))
	fntest.Problem(t, w, http.StatusBadRequest, "unsupported_media_type")
}

// A sale whose cache write failed (update-product-stats' Fresh, Redis down or
// slow at that moment) leaves get-product serving the old entry, and its
// ETag, until the TTL: the database is at the sale's version. An admin who
// read that ETag and sends it in If-Match is refused 412, rightly; but the
// 412 also replaces the stale entry with a marker of the product's version,
// so the admin's next GET reads the database and answers the current ETag,
// on which the update lands. Before, every GET answered the same stale ETag
// and every PATCH on it was 412 until the TTL ran out (5 minutes).
func TestAStaleCachedETagIsRefusedOnceNotUntilTheTTL(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	admin := env.Token(t, "admin")
	ctx := t.Context()
	p := env.Create(t, "LAMP-1", "Desk Lamp", "home", 2999)
	env.Remember(ctx, p) // as a GET would have
	// A sale whose cache write never landed: the row moves on, the entry stays.
	sold, err := env.Store.SetSoldCount(ctx, p.ID, 3)
	if err != nil || sold.Version != p.Version+1 {
		t.Fatalf("the sale: version %d, %v; want %d", sold.Version, err, p.Version+1)
	}
	if _, v, ok := env.Cached(ctx, p.ID.String()); !ok || v != p.Version {
		t.Fatalf("cache holds version %d (%v), want the stale %d: the test proves nothing", v, ok, p.Version)
	}

	path := "/api/v1/products/" + p.ID.String()
	w := envtest.Do(t, h, http.MethodPatch, path, `{"name":"Reading Lamp"}`, "Authorization", admin, "If-Match", p.ETag())
	fntest.Problem(t, w, http.StatusPreconditionFailed, "precondition_failed")
	if got, err := env.Store.Get(ctx, p.ID); err != nil || got.Version != sold.Version || got.Name != "Desk Lamp" {
		t.Fatalf("after the 412: %+v, %v; want the product unchanged at version %d", got, err, sold.Version)
	}
	if _, v, ok := env.Cached(ctx, p.ID.String()); ok {
		t.Fatalf("after the 412 the cache still serves version %d, whose ETag the next PATCH is refused on again; want a miss", v)
	}
	env.Remember(ctx, p) // a slow reader's old copy cannot come back either
	if _, v, ok := env.Cached(ctx, p.ID.String()); ok {
		t.Fatalf("an old copy of version %d stuck after the 412's marker", v)
	}

	// The admin reads again (get-product misses and reads the row) and
	// updates on what it answers.
	current, err := env.Store.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	w = envtest.Do(t, h, http.MethodPatch, path, `{"name":"Reading Lamp"}`, "Authorization", admin, "If-Match", current.ETag())
	if w.Code != http.StatusOK {
		t.Fatalf("PATCH on the ETag read after the 412: %d %s", w.Code, w.Body)
	}
}

// A patch may rename a product to a Persian name with a zero-width
// non-joiner (U+200C) between letters; one last is 422, the product unchanged.
func TestANameWithAJoinerBetweenLettersIsPatched(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	admin := env.Token(t, "admin")
	p := env.Create(t, "BOOK-1", "Books", "books", 500)
	path := "/api/v1/products/" + p.ID.String()
	w := envtest.Do(t, h, http.MethodPatch, path, `{"name":"کتاب\u200c"}`, "Authorization", admin)
	if w.Code != http.StatusUnprocessableEntity {
		t.Errorf("a trailing non-joiner: %d %s, want 422", w.Code, w.Body)
	}
	w = envtest.Do(t, h, http.MethodPatch, path, `{"name":"کتاب\u200cها"}`, "Authorization", admin)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got, err := env.Store.Get(t.Context(), p.ID); err != nil || got.Name != "کتاب\u200cها" || got.Version != 2 {
		t.Errorf("stored %+v, %v; want the non-joiner kept, version 2", got, err)
	}
}
