package function

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv/envtest"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/search"
)

const body = `{"sku":"hp-100","name":"Studio Headphones","description":"Closed back","category":"audio","price":{"amount":12999,"currency":"USD"}}`

func TestCreate(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	admin := env.Token(t, "admin")

	w := envtest.Do(t, h, http.MethodPost, "/api/v1/products", body, "Authorization", admin)
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got catalog.Product
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := catalog.Product{SKU: "HP-100", Name: "Studio Headphones", Description: "Closed back", Category: "audio",
		Price: catalog.Money{Amount: 12999, Currency: "USD"}, Version: 1}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(catalog.Product{}, "ID", "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("product (-want +got):\n%s", diff)
	}
	if got.ID.Version() != 7 {
		t.Errorf("id %s is not a UUIDv7", got.ID)
	}
	if loc := w.Header().Get("Location"); loc != "/api/v1/products/"+got.ID.String() {
		t.Errorf("Location %q", loc)
	}
	if n := env.OutboxCount(t, got.ID); n != 1 {
		t.Errorf("%d product.changed.v1 events, want 1", n)
	}
	stored, err := env.Store.Get(t.Context(), got.ID)
	if err != nil || stored.Name != want.Name {
		t.Errorf("stored %+v, %v", stored, err)
	}
	res, err := env.Search.Search(t.Context(), search.Query{Text: "headphones", Limit: 5, Sort: search.SortRelevance})
	if err != nil || len(res.Hits) != 1 || res.Hits[0].ID != got.ID {
		t.Errorf("search after create: %+v, %v", res, err)
	}

	w = envtest.Do(t, h, http.MethodPost, "/api/v1/products", body, "Authorization", admin)
	if w.Code != http.StatusConflict || !json.Valid(w.Body.Bytes()) {
		t.Errorf("duplicate sku: %d %s", w.Code, w.Body)
	}
	var p struct{ Code string }
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	if p.Code != "sku_taken" {
		t.Errorf("duplicate sku code %q", p.Code)
	}
}

func TestRefusals(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	admin := env.Token(t, "admin")
	cases := []struct {
		name, body, auth string
		status           int
	}{
		{"no token", body, "", http.StatusUnauthorized},
		{"bad token", body, "Bearer nope", http.StatusUnauthorized},
		{"customer", body, env.Token(t, "customer"), http.StatusForbidden},
		{"negative price", `{"sku":"A-1","name":"n","category":"c","price":{"amount":-5,"currency":"USD"}}`, admin, http.StatusUnprocessableEntity},
		{"zero price", `{"sku":"A-1","name":"n","category":"c","price":{"amount":0}}`, admin, http.StatusUnprocessableEntity},
		{"float price", `{"sku":"A-1","name":"n","category":"c","price":{"amount":12.5,"currency":"USD"}}`, admin, http.StatusBadRequest},
		// JSON Schema counts these as integers; the decoder does not, and the
		// contract says so (400 invalid_json).
		{"integral float price", `{"sku":"A-1","name":"n","category":"c","price":{"amount":100.0}}`, admin, http.StatusBadRequest},
		{"exponent price", `{"sku":"A-1","name":"n","category":"c","price":{"amount":1e2}}`, admin, http.StatusBadRequest},
		{"string price", `{"sku":"A-1","name":"n","category":"c","price":"12"}`, admin, http.StatusBadRequest},
		{"unknown field", `{"sku":"A-1","name":"n","category":"c","price":{"amount":5},"stock":3}`, admin, http.StatusBadRequest},
		{"unknown price field", `{"sku":"A-1","name":"n","category":"c","price":{"amount":5,"cents":1}}`, admin, http.StatusBadRequest},
		{"bad sku", `{"sku":"a b","name":"n","category":"c","price":{"amount":5}}`, admin, http.StatusUnprocessableEntity},
		{"missing name", `{"sku":"A-1","category":"c","price":{"amount":5}}`, admin, http.StatusUnprocessableEntity},
		{"bad category", `{"sku":"A-1","name":"n","category":"Not A Slug","price":{"amount":5}}`, admin, http.StatusUnprocessableEntity},
		{"bad currency", `{"sku":"A-1","name":"n","category":"c","price":{"amount":5,"currency":"dollars"}}`, admin, http.StatusUnprocessableEntity},
		{"not json", `{"sku":`, admin, http.StatusBadRequest},
		{"empty", ``, admin, http.StatusBadRequest},
	}
	for _, c := range cases {
		w := envtest.Do(t, h, http.MethodPost, "/api/v1/products", c.body, "Authorization", c.auth)
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, w.Code, c.status, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
	}
	items, _, err := env.Store.List(t.Context(), "", [16]byte{}, 10)
	if err != nil || len(items) != 0 {
		t.Errorf("refused requests stored %d products (%v)", len(items), err)
	}
}

// TestRefusesABodyWithoutContentType: a body sent without a Content-Type is
// 400 unsupported_media_type, however JSON it looks, as on every operation
// that takes one, so a client that forgets the header learns it at once.
func TestRefusesABodyWithoutContentType(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	w := fntest.Do(t, New(env.Deps), http.MethodPost, "/api/v1/products", "", body, "Authorization", env.Token(t, "admin"))
	fntest.Problem(t, w, http.StatusBadRequest, "unsupported_media_type")
}

// A Persian product name needs a zero-width non-joiner (U+200C) between
// letters: created and stored as sent; one first, last or doubled is 422
// with nothing stored.
func TestANameWithAJoinerBetweenLettersIsCreated(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps)
	admin := env.Token(t, "admin")
	w := envtest.Do(t, h, http.MethodPost, "/api/v1/products", `{"sku":"fa-1","name":"کتاب\u200cها","category":"books","price":{"amount":500}}`, "Authorization", admin)
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got catalog.Product
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if stored, err := env.Store.Get(t.Context(), got.ID); err != nil || stored.Name != "کتاب\u200cها" {
		t.Errorf("stored %+v, %v; want the non-joiner kept", stored, err)
	}
	for _, name := range []string{`\u200cکتاب`, `کتاب\u200c`, `کتاب\u200c\u200cها`} {
		w := envtest.Do(t, h, http.MethodPost, "/api/v1/products", `{"sku":"fa-2","name":"`+name+`","category":"books","price":{"amount":500}}`, "Authorization", admin)
		var p struct{ Code, Detail string }
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != http.StatusUnprocessableEntity || p.Code != "invalid_request" || !strings.Contains(p.Detail, "U+200C") {
			t.Errorf("name %s: %d %s, want 422 invalid_request naming U+200C", name, w.Code, w.Body)
		}
	}
	if items, _, err := env.Store.List(t.Context(), "", [16]byte{}, 10); err != nil || len(items) != 1 {
		t.Errorf("%d products stored (%v), want the one created", len(items), err)
	}
}
