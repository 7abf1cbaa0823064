package fnhttp_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
)

// FuzzDecodeBytes: the strict decoder never panics, refuses with a 4xx, and
// whatever it accepts satisfies the text rule in every string and the key
// rule (keys.go), told by encoding/json's own tokens: no object repeats a
// key, and a struct's keys are its fields' exact names (seeds in
// testdata/fuzz/FuzzDecodeBytes; go test -fuzz FuzzDecodeBytes explores).
func FuzzDecodeBytes(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","count":2}`, `{"name":"a\u0000"}`, "{\"name\":\"\xff\"}", `{"name":"a\nb"}`,
		`{"sku":"X","name":"n","description":"d\nd","category":"c","price":{"amount":1,"currency":"USD"}}`,
		`{"items":[{"product_id":"0190a1b2-0000-7000-8000-000000000001","quantity":1}],"shipping_address":{"name":"A","line1":"B","city":"C","postal_code":"1","country":"US"},"payment":{"token":"tok_visa"}}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, `{"count":1e400}`, `{"a":1} x`, ``,
		`{"Name":"a"}`, `{"name":"a","name":"b"}`, `{"nam\u0065":"a","count":1}`, `{"a":{"b":[{"c":1,"C":2,"c":3}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(name string, dst any, strings func() []string) {
			err := fnhttp.DecodeBytes(body, dst)
			if err != nil {
				if s := fnhttp.Status(err); s < 400 || s > 499 {
					t.Fatalf("%s: %v answers %d, want 4xx", name, err, s)
				}
				return
			}
			for _, s := range strings() {
				if err := fnhttp.CheckText("", s, true); err != nil {
					t.Fatalf("%s accepted %q: %v", name, s, err)
				}
			}
		}
		var p payload
		check("payload", &p, func() []string { return []string{p.Name} })
		var v any
		check("any", &v, func() []string { return nil })
		if keys, repeat := objectKeys(body); fnhttp.DecodeBytes(body, new(payload)) == nil {
			if repeat {
				t.Fatalf("payload accepted a repeated key in %q", body)
			}
			for _, k := range keys {
				if k != "name" && k != "count" {
					t.Fatalf("payload accepted key %q", k)
				}
			}
		} else if fnhttp.DecodeBytes(body, new(any)) == nil && repeat {
			t.Fatalf("any accepted a repeated key in %q", body)
		}
		var d catalog.Draft
		check("catalog.Draft", &d, func() []string { return []string{d.SKU, d.Name, d.Description, d.Category, d.Price.Currency} })
		var o orders.PlaceRequest
		check("orders.PlaceRequest", &o, func() []string {
			a := o.ShippingAddress
			return []string{a.Name, a.Line1, a.City, a.PostalCode, a.Country, o.Payment.Token}
		})
	})
}

// objectKeys reads body with encoding/json's tokens: the keys of its
// outermost object (if it is one), and whether any object repeats a key.
func objectKeys(body []byte) (top []string, repeat bool) {
	type container struct {
		keys    map[string]bool // an object's keys so far; nil for an array
		wantKey bool            // an object's next token is a key
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var open []*container
	valueDone := func() { // a value ended: its object's next token is a key
		if len(open) > 0 && open[len(open)-1].keys != nil {
			open[len(open)-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return top, repeat
		}
		in := (*container)(nil)
		if len(open) > 0 {
			in = open[len(open)-1]
		}
		switch tok {
		case json.Delim('{'):
			open = append(open, &container{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			open = append(open, &container{})
		case json.Delim('}'), json.Delim(']'):
			open = open[:len(open)-1]
			valueDone()
		default:
			if k, ok := tok.(string); ok && in != nil && in.wantKey {
				repeat = repeat || in.keys[k]
				in.keys[k], in.wantKey = true, false
				if len(open) == 1 {
					top = append(top, k)
				}
				continue
			}
			valueDone()
		}
	}
}

// FuzzCheckRequestText: any raw query either passes the text rule with
// every parameter valid text, or is refused with a 4xx; never a panic.
func FuzzCheckRequestText(f *testing.F) {
	for _, s := range []string{"q=caf%C3%A9", "q=%00", "q=%FF", "q=%C0%AF", "q=%ED%A0%80", "%zz", "a=1&a=%0A", "q=" + url.QueryEscape("\u0085")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.URL.RawQuery = raw
		err := fnhttp.CheckRequestText(r)
		if err != nil {
			if s := fnhttp.Status(err); s < 400 || s > 499 {
				t.Fatalf("%q: %v answers %d", raw, err, s)
			}
			return
		}
		v, _ := url.ParseQuery(raw)
		for k, vals := range v {
			for _, s := range append(vals, k) {
				if fnhttp.CheckText("", s, false) != nil {
					t.Fatalf("%q passed with %q", raw, s)
				}
			}
		}
	})
}
