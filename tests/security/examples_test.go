package security

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// example is a valid body for the operation, with values that make each call
// unique (a new email, a new sku): the probes poison one part of it at a
// time. A public write route without an example fails the suite: add one
// here when adding a route.
func (f *fixture) example(t testing.TB, o operation) map[string]any {
	t.Helper()
	unique := uuid.NewString()[:8]
	switch o.Function {
	case "register-user":
		return map[string]any{"email": "probe-" + unique + "@example.com", "password": "probe password " + unique, "name": "Probe"}
	case "login-user":
		return map[string]any{"email": f.emailA, "password": f.passA}
	case "create-product":
		return map[string]any{"sku": "PROBE-" + unique, "name": "Probe", "description": "A probe.", "category": "probe-new-" + f.Suffix,
			"price": map[string]any{"amount": 100, "currency": "USD"}}
	case "update-product":
		return map[string]any{"name": "Probe " + unique, "description": "Patched.", "category": "probe-" + f.Suffix,
			"sku": "SCRATCH-" + unique, "price": map[string]any{"amount": 1250, "currency": "USD"}}
	case "set-stock":
		return map[string]any{"on_hand": stockLevel()}
	case "set-cart-item":
		return map[string]any{"quantity": 1}
	case "create-order":
		return orderBody(f.scratch.ID, 1)
	}
	t.Fatalf("%s takes a body but the security suite has no example of it: add one to example()", o)
	return nil
}

// precondition is the header a write route that must be conditional needs
// for its example to be accepted (nil for the others): set-stock refuses a
// write without If-Match or If-None-Match (428), and the scratch product is
// stocked, so its example overwrites whatever level it has.
func precondition(o operation) map[string]string {
	if o.Function == "set-stock" {
		return map[string]string{"If-Match": "*"}
	}
	return nil
}

// marker is a placeholder string the probes put in a body and replace, after
// encoding, with a raw JSON fragment (invalid UTF-8, a huge number, deep
// nesting) that no Go value encodes to.
const marker = "\u2063probe-marker\u2063"

// encodeWith is body encoded as JSON with the value at path replaced by the
// raw JSON fragment.
func encodeWith(t testing.TB, body map[string]any, path []any, fragment string) []byte {
	t.Helper()
	enc, err := json.Marshal(setAt(clone(body), path, marker))
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(marker)
	if !strings.Contains(string(enc), string(quoted)) {
		t.Fatalf("marker lost in %s", enc)
	}
	return []byte(strings.Replace(string(enc), string(quoted), fragment, 1))
}

// setAt returns cur with the value at path set to v, creating objects and
// array elements on the way.
func setAt(cur any, path []any, v any) any {
	if len(path) == 0 {
		return v
	}
	switch k := path[0].(type) {
	case string:
		m, _ := cur.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		m[k] = setAt(m[k], path[1:], v)
		return m
	case int:
		a, _ := cur.([]any)
		for len(a) <= k {
			a = append(a, nil)
		}
		a[k] = setAt(a[k], path[1:], v)
		return a
	}
	return cur
}

// clone is a deep copy of a JSON body.
func clone(body map[string]any) map[string]any {
	b, _ := json.Marshal(body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}
