package catalog_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/fault"
)

func valid() catalog.Draft {
	return catalog.Draft{SKU: "ab-12", Name: " Lamp ", Category: " home ", Price: catalog.Money{Amount: 100}}
}

func TestNewProduct(t *testing.T) {
	p, err := catalog.NewProduct(valid(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// api/openapi.yaml's ProductDraft: sku, name and category stored trimmed.
	if p.SKU != "AB-12" || p.Name != "Lamp" || p.Category != "home" || p.Price.Currency != "USD" || p.Version != 1 || p.ID.Version() != 7 {
		t.Errorf("normalised product %+v", p)
	}
	cases := map[string]func(*catalog.Draft){
		"short sku":      func(d *catalog.Draft) { d.SKU = "AB" },
		"sku with space": func(d *catalog.Draft) { d.SKU = "AB 12" },
		"long sku":       func(d *catalog.Draft) { d.SKU = strings.Repeat("A", 33) },
		// Letters beyond ASCII that strings.ToUpper maps onto ASCII ones:
		// the contract's pattern refuses them.
		"long s in sku":   func(d *catalog.Draft) { d.SKU = "ſku-1" },
		"dotless i sku":   func(d *catalog.Draft) { d.SKU = "ıtem-1" },
		"empty name":      func(d *catalog.Draft) { d.Name = "  " },
		"long name":       func(d *catalog.Draft) { d.Name = strings.Repeat("é", 201) },
		"long desc":       func(d *catalog.Draft) { d.Description = strings.Repeat("x", 5001) },
		"no category":     func(d *catalog.Draft) { d.Category = "" },
		"category case":   func(d *catalog.Draft) { d.Category = "Home" },
		"zero price":      func(d *catalog.Draft) { d.Price.Amount = 0 },
		"huge price":      func(d *catalog.Draft) { d.Price.Amount = 100_000_001 },
		"lower currency":  func(d *catalog.Draft) { d.Price.Currency = "usd" },
		"currency digits": func(d *catalog.Draft) { d.Price.Currency = "US1" },
	}
	for name, mutate := range cases {
		d := valid()
		mutate(&d)
		if _, err := catalog.NewProduct(d, time.Now()); !fault.Is(err, fault.Invalid, "invalid_request") {
			t.Errorf("%s: err %v, want invalid_request", name, err)
		}
	}
}

func TestApplyMergeSemantics(t *testing.T) {
	p, _ := catalog.NewProduct(catalog.Draft{SKU: "AB-12", Name: "Lamp", Description: "old", Category: "home",
		Price: catalog.Money{Amount: 100, Currency: "EUR"}}, time.Now())
	var pt catalog.Patch
	if err := json.Unmarshal([]byte(`{"description":null,"price":{"amount":250}}`), &pt); err != nil {
		t.Fatal(err)
	}
	got, err := catalog.Apply(p, pt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != "" || got.Price != (catalog.Money{Amount: 250, Currency: "EUR"}) || got.Name != "Lamp" || got.Version != 2 {
		t.Errorf("patched %+v", got)
	}
	for _, body := range []string{`{"name":null}`, `{"price":null}`, `{"price":{"amount":null}}`, `{}`, `{"price":{"amount":0}}`,
		`{"price":{"currency":null}}`, `{"price":{"currency":"usd"}}`, `{"price":{"currency":" USD "}}`, `{"price":{"currency":""}}`,
		`{"price":{}}`, `{"name":"Lamp two","price":{}}`, `{"sku":"ſku-1"}`, `{"sku":"ıtem-1"}`} {
		var pt catalog.Patch
		if err := json.Unmarshal([]byte(body), &pt); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.Apply(p, pt, time.Now()); !fault.Is(err, fault.Invalid, "") {
			t.Errorf("%s: err %v, want invalid", body, err)
		}
	}
	archived, _ := catalog.Archive(p, time.Now())
	if _, err := catalog.Apply(archived, pt, time.Now()); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("patching an archived product: %v", err)
	}
	if _, err := catalog.Archive(archived, time.Now()); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("archiving twice: %v", err)
	}
}

func TestCursor(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	got, err := catalog.DecodeCursor(catalog.EncodeCursor(id))
	if err != nil || got != id {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if got, err := catalog.DecodeCursor(""); err != nil || got != uuid.Nil {
		t.Errorf("empty cursor: %v %v", got, err)
	}
	// Another spelling of the id uuid.Parse would read is not a cursor
	// EncodeCursor wrote.
	spelled := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte("p1:" + s)) }
	for _, c := range []string{"x", id.String(), "cDE6", "!!!",
		spelled(strings.ToUpper(id.String())), spelled(strings.ReplaceAll(id.String(), "-", "")),
		spelled("{" + id.String() + "}"), spelled("urn:uuid:" + id.String())} {
		if _, err := catalog.DecodeCursor(c); !fault.Is(err, fault.Invalid, "invalid_cursor") {
			t.Errorf("%q: %v", c, err)
		}
	}
}

// The contract's maxLength counts a name or description as sent, padding
// included: one over the maximum only once padded is refused by both writes,
// and padded up to the maximum it is accepted and stored trimmed.
func TestLengthsAreCountedAsSent(t *testing.T) {
	for field, mutate := range map[string]func(*catalog.Draft){
		"name":        func(d *catalog.Draft) { d.Name = " " + strings.Repeat("a", catalog.MaxName) },
		"description": func(d *catalog.Draft) { d.Description = strings.Repeat("x", catalog.MaxDescription) + "\n" },
	} {
		d := valid()
		mutate(&d)
		if _, err := catalog.NewProduct(d, time.Now()); !fault.Is(err, fault.Invalid, "invalid_request") {
			t.Errorf("NewProduct with a padded %s one over the maximum: err %v, want invalid_request", field, err)
		}
	}
	d := valid()
	d.Name, d.Description = " "+strings.Repeat("a", catalog.MaxName-1), strings.Repeat("x", catalog.MaxDescription-1)+"\n"
	p, err := catalog.NewProduct(d, time.Now())
	if err != nil {
		t.Fatalf("padded to the maximum: %v", err)
	}
	if len(p.Name) != catalog.MaxName-1 || len(p.Description) != catalog.MaxDescription-1 {
		t.Errorf("stored name %d, description %d characters, want them trimmed", len(p.Name), len(p.Description))
	}
	for _, body := range []string{
		`{"name":" ` + strings.Repeat("a", catalog.MaxName) + `"}`,
		`{"description":"` + strings.Repeat("x", catalog.MaxDescription) + ` "}`,
	} {
		var pt catalog.Patch
		if err := json.Unmarshal([]byte(body), &pt); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.Apply(p, pt, time.Now()); !fault.Is(err, fault.Invalid, "invalid_request") {
			t.Errorf("Apply %.20s…: err %v, want invalid_request", body, err)
		}
	}
	var pt catalog.Patch
	if err := json.Unmarshal([]byte(`{"name":" `+strings.Repeat("b", catalog.MaxName-1)+`"}`), &pt); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Apply(p, pt, time.Now()); err != nil {
		t.Errorf("Apply a name padded to the maximum: %v", err)
	}
}

// A name holding an invisible formatting character (Unicode category Cf:
// zero-width characters, bidi controls, U+FEFF) looks like another product's
// name; a description may keep them (a zero-width joiner in an emoji, a
// zero-width non-joiner in Persian) but not the bidi embeddings, overrides
// and isolates, which reorder the text shown around them. Both writes
// refuse them, naming the field and the character; a stored product
// holding one can still be patched in another field.
func TestInvisibleFormattingCharactersAreRefused(t *testing.T) {
	for _, tc := range []struct{ name, description, want string }{
		{"La\u200bmp", "", "name must not contain the invisible formatting character U+200B"},
		{"Lamp\u200d", "", "U+200D"}, // a joiner not between letters
		{"\ufeffLamp", "", "U+FEFF"},
		{"Lamp\u202e", "", "U+202E"},
		{"\u2066Lamp\u2069", "", "U+2066"},
		{"Lamp", "Bright \u202eroF\u202c lamp", "description must not contain the bidi control U+202E"},
		{"Lamp", "Bright \u2067lamp\u2069", "U+2067"},
		{"Lamp", "a \u202a b", "U+202A"},
	} {
		d := valid()
		d.Name, d.Description = tc.name, tc.description
		_, err := catalog.NewProduct(d, time.Now())
		if !fault.Is(err, fault.Invalid, "invalid_request") || !strings.Contains(err.(*fault.Error).Message, tc.want) {
			t.Errorf("NewProduct name %+q description %+q: err %v, want invalid_request naming %q", tc.name, tc.description, err, tc.want)
		}
		p, err := catalog.NewProduct(valid(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"name": tc.name, "description": tc.description})
		var pt catalog.Patch
		if err := json.Unmarshal(body, &pt); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.Apply(p, pt, time.Now()); !fault.Is(err, fault.Invalid, "invalid_request") || !strings.Contains(err.(*fault.Error).Message, tc.want) {
			t.Errorf("Apply %s: err %v, want invalid_request naming %q", body, err, tc.want)
		}
	}
	// A description keeps the other Cf characters and its line breaks.
	d := valid()
	d.Description = "Family \U0001F468\u200d\U0001F469\u200d\U0001F467 edition\nمی\u200cخواهم, left-to-right mark \u200e"
	if _, err := catalog.NewProduct(d, time.Now()); err != nil {
		t.Errorf("a description with a zero-width joiner, non-joiner and mark: %v", err)
	}
	// A product stored before the rule keeps its name through a patch of
	// another field.
	p, err := catalog.NewProduct(valid(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p.Name = "La\u200bmp"
	var pt catalog.Patch
	if err := json.Unmarshal([]byte(`{"price":{"amount":250}}`), &pt); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Apply(p, pt, time.Now()); err != nil {
		t.Errorf("patching the price of a product whose stored name holds U+200B: %v", err)
	}
}

// A product's name holds a zero-width non-joiner (U+200C) or joiner
// (U+200D) where it joins (formatchar.InName), as Persian and Indic names
// need, with either write; between Latin letters, first, last, doubled or
// beside a space it is refused.
func TestANameHoldsAJoinerOnlyWhereItJoins(t *testing.T) {
	for _, name := range []string{"کتاب\u200cها", "  \u0915\u094d\u200d\u0937 lamp "} {
		d := valid()
		d.Name = name
		if _, err := catalog.NewProduct(d, time.Now()); err != nil {
			t.Errorf("NewProduct name %+q: %v, want accepted", name, err)
		}
		p, err := catalog.NewProduct(valid(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"name": name})
		var pt catalog.Patch
		if err := json.Unmarshal(body, &pt); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.Apply(p, pt, time.Now()); err != nil {
			t.Errorf("Apply %s: %v, want accepted", body, err)
		}
	}
	for _, name := range []string{"\u200c", "\u200cکتاب", "کتاب\u200d", "کتاب\u200c ", "کتاب\u200c\u200cها", "Lamp \u200dX", "Lamp\u200c2", "Mu\u200dg", "La\u200cmp"} {
		d := valid()
		d.Name = name
		if _, err := catalog.NewProduct(d, time.Now()); !fault.Is(err, fault.Invalid, "invalid_request") || !strings.Contains(err.(*fault.Error).Message, "name must not contain the invisible formatting character U+200") {
			t.Errorf("NewProduct name %+q: err %v, want invalid_request naming the joiner", name, err)
		}
	}
}
