package function

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// credential is a caller reserve-stock accepts.
var credential = fntest.Caller("create-order")

func setup(t *testing.T) (http.Handler, *inventorydb.Store, uuid.UUID) {
	t.Helper()
	store := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	product := uuid.Must(uuid.NewV7())
	if _, err := store.SetOnHand(context.Background(), product, 3, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	return New(store, fntest.Internal(), slog.New(slog.DiscardHandler)), store, product
}

func TestReserveStock(t *testing.T) {
	h, store, product := setup(t)
	order := uuid.Must(uuid.NewV7())
	body := `{"order_id":"` + order.String() + `","lines":[{"product_id":"` + product.String() + `","quantity":2}],"ttl_seconds":60}`

	if code, out := fntest.Call(t, h, "", body); code != http.StatusUnauthorized || out["code"] != "unauthenticated" {
		t.Errorf("no credential: %d %v", code, out)
	}
	if code, _ := fntest.Call(t, h, "wrong", body); code != http.StatusUnauthorized {
		t.Errorf("wrong credential: %d", code)
	}
	// Only the saga's drivers may reserve: every other valid caller is 403
	// and holds nothing.
	fntest.RefusesOtherCallers(t, h, "reserve-stock", body)
	if st, err := store.Get(context.Background(), product); err != nil || st.Reserved != 0 {
		t.Fatalf("a refused caller reserved %d (%v)", st.Reserved, err)
	}
	for _, caller := range []string{"recover-orders", "create-order"} {
		code, out := fntest.Call(t, h, fntest.Caller(caller), body)
		if code != http.StatusOK || out["status"] != "held" || out["order_id"] != order.String() || out["expires_at"] == nil {
			t.Fatalf("reserve: %d %v", code, out)
		}
	}
	st, err := store.Get(context.Background(), product)
	if err != nil || st.Reserved != 2 {
		t.Errorf("reserved %d %v, want 2 (one hold)", st.Reserved, err)
	}
	other := `{"order_id":"` + uuid.NewString() + `","lines":[{"product_id":"` + product.String() + `","quantity":2}]}`
	code, out := fntest.Call(t, h, credential, other)
	if code != http.StatusConflict || out["code"] != "out_of_stock" || !strings.Contains(out["detail"].(string), product.String()) {
		t.Errorf("out of stock: %d %v", code, out)
	}
}

// Bad input is refused with its exact status and problem code, and holds
// nothing: a body that is not the request's JSON (a wrong type, an unknown
// field, an id in another spelling) is 400 invalid_json, a well-formed one
// the reservation rules refuse is 422 invalid_request. Until 2026-12-07 any
// 4xx passed.
func TestReserveStockRefusesBadInput(t *testing.T) {
	h, store, product := setup(t)
	p := product.String()
	o := uuid.NewString()
	const malformed, invalid = "invalid_json", "invalid_request"
	cases := map[string]struct {
		body   string
		status int
		code   string
	}{
		"unknown field":     {`{"order_id":"` + o + `","lines":[{"product_id":"` + p + `","quantity":1}],"price":1}`, http.StatusBadRequest, malformed},
		"negative quantity": {`{"order_id":"` + o + `","lines":[{"product_id":"` + p + `","quantity":-1}]}`, http.StatusUnprocessableEntity, invalid},
		"zero quantity":     {`{"order_id":"` + o + `","lines":[{"product_id":"` + p + `","quantity":0}]}`, http.StatusUnprocessableEntity, invalid},
		"huge quantity":     {`{"order_id":"` + o + `","lines":[{"product_id":"` + p + `","quantity":1001}]}`, http.StatusUnprocessableEntity, invalid},
		"string quantity":   {`{"order_id":"` + o + `","lines":[{"product_id":"` + p + `","quantity":"1"}]}`, http.StatusBadRequest, malformed},
		"fraction":          {`{"order_id":"` + o + `","lines":[{"product_id":"` + p + `","quantity":1.5}]}`, http.StatusBadRequest, malformed},
		"bad order id":      {`{"order_id":"nope","lines":[{"product_id":"` + p + `","quantity":1}]}`, http.StatusBadRequest, malformed},
		"no order id":       {`{"lines":[{"product_id":"` + p + `","quantity":1}]}`, http.StatusUnprocessableEntity, invalid},
		"no product id":     {`{"order_id":"` + o + `","lines":[{"quantity":1}]}`, http.StatusUnprocessableEntity, invalid},
		"empty lines":       {`{"order_id":"` + o + `","lines":[]}`, http.StatusUnprocessableEntity, invalid},
		"duplicate lines":   {`{"order_id":"` + o + `","lines":[{"product_id":"` + p + `","quantity":1},{"product_id":"` + p + `","quantity":1}]}`, http.StatusUnprocessableEntity, invalid},
		"ttl out of range":  {`{"order_id":"` + o + `","lines":[{"product_id":"` + p + `","quantity":1}],"ttl_seconds":5}`, http.StatusUnprocessableEntity, invalid},
		"not json":          {`lines=1`, http.StatusBadRequest, malformed},
		"empty body":        {``, http.StatusBadRequest, malformed},
		"array":             {`[]`, http.StatusBadRequest, malformed},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if code, out := fntest.Call(t, h, credential, tc.body); code != tc.status || out["code"] != tc.code {
				t.Errorf("%d %v, want %d %s", code, out, tc.status, tc.code)
			}
		})
	}
	if st, err := store.Get(context.Background(), product); err != nil || st.Reserved != 0 {
		t.Errorf("stock %+v (%v) after the refused requests, want nothing reserved", st, err)
	}
}

// An internal call is held to the same rule as a public one: a body that does
// not declare its type is 400 unsupported_media_type, from an accepted
// caller too, and holds nothing. Every internal caller (ordersgw) declares
// application/json.
func TestReserveStockRefusesABodyWithoutContentType(t *testing.T) {
	h, store, product := setup(t)
	body := `{"order_id":"` + uuid.NewString() + `","lines":[{"product_id":"` + product.String() + `","quantity":1}]}`
	w := fntest.Do(t, h, http.MethodPost, "/", "", body, auth.InternalHeader, credential)
	fntest.Problem(t, w, http.StatusBadRequest, "unsupported_media_type")
	if st, err := store.Get(context.Background(), product); err != nil || st.Reserved != 0 {
		t.Errorf("a refused call reserved %d (%v)", st.Reserved, err)
	}
}

// Every id of the body is read only in its canonical form (either case,
// docs/security.md): another spelling uuid.UUID's own decoding reads, of the
// order id or of a line's product id, is 400 invalid_json and holds nothing.
// Until 2026-12-07 they were read as the id they spell.
func TestReserveStockReadsIDsOnlyInTheirCanonicalForm(t *testing.T) {
	h, store, product := setup(t)
	body := func(order, product string) string {
		return `{"order_id":"` + order + `","lines":[{"product_id":"` + product + `","quantity":1}]}`
	}
	nothingHeld := func(t *testing.T) {
		if st, err := store.Get(context.Background(), product); err != nil || st.Reserved != 0 {
			t.Fatalf("a refused call reserved %d (%v)", st.Reserved, err)
		}
	}
	fntest.RefusesOtherSpellings(t, h, credential, uuid.Must(uuid.NewV7()), "order_id ",
		func(other string) string { return body(other, product.String()) }, nothingHeld)
	fntest.RefusesOtherSpellings(t, h, credential, product, "product_id ",
		func(other string) string { return body(uuid.NewString(), other) }, nothingHeld)
	order := uuid.Must(uuid.NewV7())
	code, out := fntest.Call(t, h, credential, body(strings.ToUpper(order.String()), strings.ToUpper(product.String())))
	if code != http.StatusOK || out["status"] != "held" || out["order_id"] != order.String() {
		t.Fatalf("upper-case ids: %d %v, want held under the order's id", code, out)
	}
	if st, err := store.Get(context.Background(), product); err != nil || st.Reserved != 1 {
		t.Errorf("reserved %d (%v), want 1", st.Reserved, err)
	}
}
