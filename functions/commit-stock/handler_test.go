package function

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// credential is a caller commit-stock accepts.
var credential = fntest.Caller("create-order")

func TestCommitStock(t *testing.T) {
	ctx := context.Background()
	store := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	h := New(store, fntest.Internal(), slog.New(slog.DiscardHandler))
	product := uuid.Must(uuid.NewV7())
	if _, err := store.SetOnHand(ctx, product, 2, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	reserve := func(order uuid.UUID) {
		req, err := inventory.NewHoldRequest(order, []inventory.Line{{ProductID: product, Quantity: 2}}, 30)
		if err == nil {
			_, err = store.Reserve(ctx, req)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	order, late := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	reserve(order)
	body := `{"order_id":"` + order.String() + `"}`
	if code, _ := fntest.Call(t, h, "", body); code != http.StatusUnauthorized {
		t.Errorf("no credential: %d", code)
	}
	fntest.RefusesOtherCallers(t, h, "commit-stock", body)
	if st, _ := store.Get(ctx, product); st.OnHand != 2 || st.Reserved != 2 {
		t.Fatalf("a refused caller committed: stock %+v", st)
	}
	for range 2 {
		if code, out := fntest.Call(t, h, credential, body); code != http.StatusOK || out["status"] != "committed" {
			t.Fatalf("commit: %d %v", code, out)
		}
	}
	if st, _ := store.Get(ctx, product); st.OnHand != 0 || st.Reserved != 0 {
		t.Errorf("stock %+v after commit", st)
	}
	// The 404 names the order (order_id): what tells the saga's client
	// (ordersgw) commit-stock's own answer from a route's 404.
	unknown := uuid.NewString()
	if code, out := fntest.Call(t, h, credential, `{"order_id":"`+unknown+`"}`); code != http.StatusNotFound || out["code"] != "not_found" || out["order_id"] != unknown {
		t.Errorf("unknown order: %d %v, want 404 not_found naming order_id %s", code, out, unknown)
	}
	// A hold that expired while the stock was sold meanwhile: out_of_stock.
	if _, err := store.SetOnHand(ctx, product, 2, inventory.IfExists()); err != nil {
		t.Fatal(err)
	}
	reserve(late)
	if _, err := store.Expire(ctx, time.Now().Add(time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SetOnHand(ctx, product, 1, inventory.IfExists()); err != nil {
		t.Fatal(err)
	}
	if code, out := fntest.Call(t, h, credential, `{"order_id":"`+late.String()+`"}`); code != http.StatusConflict || out["code"] != "out_of_stock" {
		t.Errorf("expired hold, stock gone: %d %v", code, out)
	}
	// A released hold is final (its order ended): 409 reservation_released,
	// and nothing is taken.
	if _, err := store.SetOnHand(ctx, product, 2, inventory.IfExists()); err != nil {
		t.Fatal(err)
	}
	released := uuid.Must(uuid.NewV7())
	reserve(released)
	if _, err := store.Release(ctx, released); err != nil {
		t.Fatal(err)
	}
	if code, out := fntest.Call(t, h, credential, `{"order_id":"`+released.String()+`"}`); code != http.StatusConflict || out["code"] != "reservation_released" {
		t.Errorf("released hold: %d %v, want 409 reservation_released", code, out)
	}
	if st, _ := store.Get(ctx, product); st.OnHand != 2 || st.Reserved != 0 {
		t.Errorf("stock %+v after the commit of a released hold, want 2 on hand, none reserved", st)
	}
	// Bad input: its exact status and problem code (until 2026-12-07 any
	// 4xx passed).
	for name, bad := range map[string]struct {
		body   string
		status int
		code   string
	}{
		"unknown field": {`{"order_id":"` + order.String() + `","force":true}`, http.StatusBadRequest, "invalid_json"},
		"wrong type":    {`{"order_id":42}`, http.StatusBadRequest, "invalid_json"},
		"missing":       {`{}`, http.StatusUnprocessableEntity, "invalid_request"},
		"null":          {`{"order_id":null}`, http.StatusUnprocessableEntity, "invalid_request"},
		"not json":      {`order`, http.StatusBadRequest, "invalid_json"},
	} {
		if code, out := fntest.Call(t, h, credential, bad.body); code != bad.status || out["code"] != bad.code {
			t.Errorf("%s: %d %v, want %d %s", name, code, out, bad.status, bad.code)
		}
	}
}

// The order id is read only in its canonical form (either case,
// docs/security.md): another spelling uuid.UUID's own decoding reads is 400
// invalid_json and commits nothing (fnhttp.OrderCall). Until 2026-12-07 it
// was read as the id it spells.
func TestCommitStockReadsTheOrderIDOnlyInItsCanonicalForm(t *testing.T) {
	ctx := context.Background()
	store := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	h := New(store, fntest.Internal(), slog.New(slog.DiscardHandler))
	product, order := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	if _, err := store.SetOnHand(ctx, product, 2, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	req, err := inventory.NewHoldRequest(order, []inventory.Line{{ProductID: product, Quantity: 2}}, 0)
	if err == nil {
		_, err = store.Reserve(ctx, req)
	}
	if err != nil {
		t.Fatal(err)
	}
	fntest.RefusesOtherSpellings(t, h, credential, order, "",
		func(other string) string { return `{"order_id":"` + other + `"}` }, func(t *testing.T) {
			if st, _ := store.Get(ctx, product); st.OnHand != 2 || st.Reserved != 2 {
				t.Fatalf("a refused call committed: stock %+v", st)
			}
		})
	if code, out := fntest.Call(t, h, credential, `{"order_id":"`+strings.ToUpper(order.String())+`"}`); code != http.StatusOK || out["status"] != "committed" || out["order_id"] != order.String() {
		t.Fatalf("upper-case id: %d %v, want committed", code, out)
	}
}
