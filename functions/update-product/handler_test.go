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
	cases := []struct {
		name    string
		ifMatch func(etag string) []string // the field's lines
		status  int
	}{
		{"exact", func(e string) []string { return []string{e} }, http.StatusOK},
		{"star", func(string) []string { return []string{"*"} }, http.StatusOK},
		{"list holding it", func(e string) []string { return []string{`"other", ` + e + ` ,"third"`} }, http.StatusOK},
		{"second line holding it", func(e string) []string { return []string{`"other"`, e} }, http.StatusOK},
		{"weak", func(e string) []string { return []string{"W/" + e} }, http.StatusPreconditionFailed},
		{"weak in a list", func(e string) []string { return []string{`"other", W/` + e} }, http.StatusPreconditionFailed},
		{"holding it, then more", func(e string) []string { return []string{e + `x`} }, http.StatusPreconditionFailed},
		{"holding it, quoted again", func(e string) []string { return []string{`"` + e + `"`} }, http.StatusPreconditionFailed},
		{"two tags without a comma", func(e string) []string { return []string{e + ` "other"`} }, http.StatusPreconditionFailed},
		{"held by it", func(e string) []string { return []string{strings.TrimSuffix(e, `-1"`) + `"`} }, http.StatusPreconditionFailed},
		{"unquoted", func(e string) []string { return []string{strings.Trim(e, `"`)} }, http.StatusPreconditionFailed},
		{"quoted star", func(string) []string { return []string{`"*"`} }, http.StatusPreconditionFailed},
		{"star in a list", func(e string) []string { return []string{"*, " + e} }, http.StatusPreconditionFailed},
		{"another version", func(e string) []string { return []string{strings.Replace(e, `-1"`, `-2"`, 1)} }, http.StatusPreconditionFailed},
		// Sent, but naming no tag: an empty list, which matches nothing. The
		// request made its write conditional; it is not unconditional.
		{"empty", func(string) []string { return []string{""} }, http.StatusPreconditionFailed},
		{"whitespace", func(string) []string { return []string{" \t"} }, http.StatusPreconditionFailed},
		{"two empty lines", func(string) []string { return []string{"", ""} }, http.StatusPreconditionFailed},
		{"only commas", func(string) []string { return []string{" , ,"} }, http.StatusPreconditionFailed},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := env.Create(t, fmt.Sprintf("IFM-%d", i), "Desk Lamp", "home", 2999)
			r := httptest.NewRequest(http.MethodPatch, "/api/v1/products/"+p.ID.String(), strings.NewReader(`{"name":"Reading Lamp"}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", admin)
			for _, line := range c.ifMatch(p.ETag()) {
				r.Header.Add("If-Match", line)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.status {
				t.Fatalf("If-Match %q on a product whose ETag is %s: %d, want %d: %s",
					r.Header.Values("If-Match"), p.ETag(), w.Code, c.status, w.Body)
			}
			if c.status == http.StatusPreconditionFailed {
				pr := fntest.Problem(t, w, http.StatusPreconditionFailed, "precondition_failed")
				// An empty or malformed field is told apart from another version.
				if noTag := ifMatchNamesNoTag[c.name]; noTag != strings.Contains(pr.Detail, "names no entity tag") && (noTag || c.name == "another version") {
					t.Errorf("If-Match %q: detail %q, want it to say the field names no entity tag: %v", r.Header.Values("If-Match"), pr.Detail, noTag)
				}
			}
			got, err := env.Store.Get(t.Context(), p.ID)
			if want := map[int]int64{http.StatusOK: 2, http.StatusPreconditionFailed: 1}[c.status]; err != nil || got.Version != want {
				t.Errorf("product after %d: version %d, %v; want %d", w.Code, got.Version, err, want)
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

// ifMatchNamesNoTag names the If-Match cases sent empty or malformed, whose
// 412 says so (fnhttp.ErrIfMatchNamesNoTag).
var ifMatchNamesNoTag = map[string]bool{"empty": true, "whitespace": true, "two empty lines": true, "only commas": true,
	"unquoted": true, "star in a list": true, "two tags without a comma": true}
