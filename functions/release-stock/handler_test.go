package function

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// credential is a caller release-stock accepts.
var credential = fntest.Caller("cancel-order")

func TestReleaseStock(t *testing.T) {
	ctx := context.Background()
	store := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	h := New(store, fntest.Internal(), slog.New(slog.DiscardHandler))
	product, order := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	if _, err := store.SetOnHand(ctx, product, 5, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	req, err := inventory.NewHoldRequest(order, []inventory.Line{{ProductID: product, Quantity: 4}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Reserve(ctx, req); err != nil {
		t.Fatal(err)
	}
	body := `{"order_id":"` + order.String() + `"}`
	if code, _ := fntest.Call(t, h, "", body); code != http.StatusUnauthorized {
		t.Errorf("no credential: %d", code)
	}
	fntest.RefusesOtherCallers(t, h, "release-stock", body) // the connectors, the scheduler, an operator
	if st, _ := store.Get(ctx, product); st.Reserved != 4 {
		t.Fatalf("a refused caller released: stock %+v", st)
	}
	for range 2 {
		if code, out := fntest.Call(t, h, credential, body); code != http.StatusOK || out["status"] != "released" {
			t.Fatalf("release: %d %v", code, out)
		}
	}
	if st, _ := store.Get(ctx, product); st.OnHand != 5 || st.Reserved != 0 {
		t.Errorf("stock %+v after release, want 5/0", st)
	}
	if code, out := fntest.Call(t, h, credential, `{"order_id":"`+uuid.NewString()+`"}`); code != http.StatusOK || out["status"] != "none" {
		t.Errorf("unknown order: %d %v", code, out)
	}
	// Bad input: its exact status and problem code (until 2026-12-07 any
	// 4xx passed).
	for name, bad := range map[string]struct {
		body   string
		status int
		code   string
	}{
		"unknown field": {`{"order_id":"` + order.String() + `","all":true}`, http.StatusBadRequest, "invalid_json"},
		"wrong type":    {`{"order_id":["x"]}`, http.StatusBadRequest, "invalid_json"},
		"missing":       {`{}`, http.StatusUnprocessableEntity, "invalid_request"},
		"not json":      {`order`, http.StatusBadRequest, "invalid_json"},
	} {
		if code, out := fntest.Call(t, h, credential, bad.body); code != bad.status || out["code"] != bad.code {
			t.Errorf("%s: %d %v, want %d %s", name, code, out, bad.status, bad.code)
		}
	}
}

// The order id is read only in its canonical form (either case,
// docs/security.md): another spelling uuid.UUID's own decoding reads is 400
// invalid_json and releases nothing, nor stores a void reservation
// (fnhttp.OrderCall). Until 2026-12-07 it was read as the id it spells.
func TestReleaseStockReadsTheOrderIDOnlyInItsCanonicalForm(t *testing.T) {
	ctx := context.Background()
	store := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	h := New(store, fntest.Internal(), slog.New(slog.DiscardHandler))
	product, order := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	if _, err := store.SetOnHand(ctx, product, 5, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	req, err := inventory.NewHoldRequest(order, []inventory.Line{{ProductID: product, Quantity: 4}}, 0)
	if err == nil {
		_, err = store.Reserve(ctx, req)
	}
	if err != nil {
		t.Fatal(err)
	}
	fntest.RefusesOtherSpellings(t, h, credential, order, "",
		func(other string) string { return `{"order_id":"` + other + `"}` }, func(t *testing.T) {
			if st, _ := store.Get(ctx, product); st.Reserved != 4 {
				t.Fatalf("a refused call released: stock %+v", st)
			}
		})
	if code, out := fntest.Call(t, h, credential, `{"order_id":"`+strings.ToUpper(order.String())+`"}`); code != http.StatusOK || out["status"] != "released" || out["order_id"] != order.String() {
		t.Fatalf("upper-case id: %d %v, want released", code, out)
	}
}
