package fnhttp_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
)

// orderBody is a create-order body of three lines.
const orderBody = `{"items":[{"product_id":"0190a1b2-0000-7000-8000-000000000001","quantity":1},` +
	`{"product_id":"0190a1b2-0000-7000-8000-000000000002","quantity":2},` +
	`{"product_id":"0190a1b2-0000-7000-8000-000000000003","quantity":3}],` +
	`"shipping_address":{"name":"Ada Lovelace","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},` +
	`"payment":{"token":"tok_visa"}}`

// keyed is a body with a map, raw and open members, whose keys are data.
type keyed struct {
	Quantity json.RawMessage  `json:"quantity"`
	Labels   map[string]int   `json:"labels"`
	Extra    any              `json:"extra"`
	Lines    []map[string]int `json:"lines"`
}

// TestDecodeReadsOnlyExactFieldNamesAndEachKeyOnce: encoding/json matches a
// key to a field whatever its case and keeps the last of a repeated key, so
// {"Quantity":3} and {"quantity":1,"Quantity":8} were accepted where the
// contract says an unknown field is 400 invalid_json, and a proxy or a log
// reading the first of two keys saw another body than the function. Every
// key, at any depth, must be its field's name exactly, and no object may
// hold a key twice (a map's keys are data: any case, but once).
func TestDecodeReadsOnlyExactFieldNamesAndEachKeyOnce(t *testing.T) {
	many := func(dup bool) string {
		var b strings.Builder
		b.WriteString(`{"labels":{`)
		for i := range 40 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		if dup {
			b.WriteString(`"k17":0,`)
		}
		b.WriteString(`"K17":1}}`)
		return b.String()
	}
	item := func(line string) string {
		return `{"items":[{"product_id":"0190a1b2-0000-7000-8000-000000000001","quantity":1},` + line + `],` +
			`"shipping_address":{"name":"A","line1":"B","city":"C","postal_code":"1","country":"US"},"payment":{"token":"tok_visa"}}`
	}
	tests := []struct {
		name string
		dst  func() any
		body string
		key  string // the key the detail names; empty: accepted
	}{
		{"exact names", func() any { return new(payload) }, `{"name":"a","count":2}`, ""},
		{"an escaped exact name", func() any { return new(payload) }, `{"nam\u0065":"a"}`, ""},
		{"capitalised", func() any { return new(payload) }, `{"Name":"a"}`, `"Name"`},
		{"upper case", func() any { return new(payload) }, `{"COUNT":4}`, `"COUNT"`},
		{"a case variant after the name", func() any { return new(payload) }, `{"count":1,"Count":8}`, `"Count"`},
		{"a repeated key", func() any { return new(payload) }, `{"count":1,"count":8}`, `"count"`},
		{"a repeated key, one escaped", func() any { return new(payload) }, `{"count":1,"\u0063ount":8}`, `"count"`},
		{"set-cart-item's quantity capitalised", func() any { return new(keyed) }, `{"Quantity":3}`, `"Quantity"`},
		{"set-cart-item's quantity in upper case", func() any { return new(keyed) }, `{"QUANTITY":4}`, `"QUANTITY"`},
		{"set-cart-item's quantity twice", func() any { return new(keyed) }, `{"quantity":1,"Quantity":8}`, `"Quantity"`},
		{"a raw value's keys are data", func() any { return new(keyed) }, `{"quantity":{"a":1,"A":2}}`, ""},
		{"a raw value's repeated key", func() any { return new(keyed) }, `{"quantity":{"a":{"b":1,"b":2}}}`, `"b"`},
		{"a map's keys are data", func() any { return new(keyed) }, `{"labels":{"a":1,"A":2}}`, ""},
		{"a map's repeated key", func() any { return new(keyed) }, `{"labels":{"a":1,"a":2}}`, `"a"`},
		{"a large map", func() any { return new(keyed) }, many(false), ""},
		{"a large map's repeated key", func() any { return new(keyed) }, many(true), `"k17"`},
		{"maps in a list", func() any { return new(keyed) }, `{"lines":[{"a":1},{"a":2,"A":3}]}`, ""},
		{"a repeated key in a list's map", func() any { return new(keyed) }, `{"lines":[{"a":1},{"a":2,"a":3}]}`, `"a"`},
		{"an open value's repeated key", func() any { return new(keyed) }, `{"extra":[{"x":{"y":1,"y":1}}]}`, `"y"`},
		{"an empty key repeated", func() any { return new(keyed) }, `{"extra":{"":{"":1,"":2}}}`, `""`},
		{"an empty key's repeated key", func() any { return new(keyed) }, `{"extra":{"":{"a":1,"a":2}}}`, `"a"`},
		{"an open value's keys are data", func() any { return new(keyed) }, `{"extra":{"x":1,"X":1}}`, ""},
		{"a document's repeated key", func() any { return new(any) }, `{"a":1,"b":2,"a":3}`, `"a"`},
		{"an order", func() any { return new(orders.PlaceRequest) }, orderBody, ""},
		{"an order's line capitalised", func() any { return new(orders.PlaceRequest) },
			item(`{"product_id":"0190a1b2-0000-7000-8000-000000000002","Quantity":2}`), `"Quantity"`},
		{"an order's line with a repeated key", func() any { return new(orders.PlaceRequest) },
			item(`{"product_id":"0190a1b2-0000-7000-8000-000000000002","quantity":2,"quantity":200}`), `"quantity"`},
		{"an order's address capitalised", func() any { return new(orders.PlaceRequest) },
			strings.Replace(orderBody, `"city"`, `"City"`, 1), `"City"`},
		{"an order's items capitalised", func() any { return new(orders.PlaceRequest) },
			strings.Replace(orderBody, `"items"`, `"Items"`, 1), `"Items"`},
		{"a patch's price member capitalised", func() any { return new(catalog.Patch) }, `{"price":{"Amount":100}}`, `"Amount"`},
		{"a patch's repeated member", func() any { return new(catalog.Patch) }, `{"name":"a","name":"b"}`, `"name"`},
		{"a patch", func() any { return new(catalog.Patch) }, `{"name":"a","description":null,"price":{"amount":100}}`, ""},
		{"a draft's name in upper case", func() any { return new(catalog.Draft) },
			`{"sku":"X","NAME":"n","description":"d","category":"c","price":{"amount":1,"currency":"USD"}}`, `"NAME"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fnhttp.DecodeBytes([]byte(tt.body), tt.dst())
			if tt.key == "" {
				if err != nil {
					t.Fatalf("DecodeBytes(%s) = %v, want it accepted", tt.body, err)
				}
				return
			}
			if !fault.Is(err, fault.Malformed, fault.CodeInvalidJSON) || fnhttp.Status(err) != http.StatusBadRequest {
				t.Fatalf("DecodeBytes(%s) = %v (status %d), want 400 invalid_json", tt.body, err, fnhttp.Status(err))
			}
			if d := fnhttp.ProblemFor(err).Detail; !strings.Contains(d, tt.key) {
				t.Errorf("detail %q does not name %s", d, tt.key)
			}
		})
	}
}

// BenchmarkDecodeBytes decodes a create-order body (every function decodes
// its body so, on its hot path).
func BenchmarkDecodeBytes(b *testing.B) {
	body := []byte(orderBody)
	b.ReportAllocs()
	for b.Loop() {
		var o orders.PlaceRequest
		if err := fnhttp.DecodeBytes(body, &o); err != nil {
			b.Fatal(err)
		}
	}
}

type Promoted struct {
	A int
	B int `json:"b"`
	C int
	E int
}

type alsoPromoted struct {
	A int // as Promoted's A at the same depth, untagged: neither is a field
	D int `json:"d"`
	E int `json:"E"` // tagged: wins over Promoted's E
}

type embedding struct {
	Promoted
	alsoPromoted
	C    int // shallower than Promoted's C
	Skip int `json:"-"`
	//lint:ignore SA5008 deliberate: "-," names the field "-", an edge case of encoding/json's the key rule must follow
	Dash int `json:"-,"`
	//lint:ignore SA5008 deliberate: a tag name encoding/json refuses, so the field keeps its Go name
	Odd   int      `json:"a\"b"` // not a valid tag name: the Go name
	Named Promoted `json:"named"`
}

// TestDecodeReadsEveryNameEncodingJSONWrites: the field names the key rule
// holds keys to are encoding/json's, promoted fields and tags' edge cases
// included: what json.Marshal writes of a struct, DecodeBytes reads into it.
func TestDecodeReadsEveryNameEncodingJSONWrites(t *testing.T) {
	in := embedding{Promoted{1, 2, 3, 4}, alsoPromoted{5, 6, 7}, 8, 9, 10, 11, Promoted{12, 13, 14, 15}}
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out embedding
	if err := fnhttp.DecodeBytes(body, &out); err != nil {
		t.Fatalf("DecodeBytes(%s) = %v", body, err)
	}
	in.Skip, in.Promoted.A, in.alsoPromoted.A = 0, 0, 0 // not fields
	in.Promoted.C, in.Promoted.E = 0, 0                 // hidden by C and alsoPromoted's E
	if out != in {
		t.Errorf("DecodeBytes(%s) = %+v, want %+v", body, out, in)
	}
	for _, key := range []string{"B", "D", "e", "c", "Named", "dash", "odd"} {
		b := []byte(`{"` + key + `":1}`)
		if err := fnhttp.DecodeBytes(b, new(embedding)); !fault.Is(err, fault.Malformed, fault.CodeInvalidJSON) {
			t.Errorf("DecodeBytes(%s) = %v, want 400 invalid_json", b, err)
		}
	}
}
