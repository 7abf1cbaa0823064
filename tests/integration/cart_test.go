// Package integration runs the shop's functions as real processes behind the
// local runtime (gateway and edge) against the real PostgreSQL and Redis.
package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/redisconn"
)

// call sends a JSON request and decodes a JSON answer into out (when not
// nil); an error fails the test at once, so only the test's goroutine may call
// it (tryCall is for others).
func call(t *testing.T, method, url, token string, body any, out any) int {
	t.Helper()
	code, _ := callWith(t, method, url, token, nil, body, out)
	return code
}

// callWith is call with extra request headers (If-Match, …), answering the
// response's headers too.
func callWith(t *testing.T, method, url, token string, header map[string]string, body any, out any) (int, http.Header) {
	t.Helper()
	code, h, err := tryCallWith(method, url, token, header, body, out)
	if err != nil {
		t.Fatal(err)
	}
	return code, h
}

// tryCall is call returning its error instead of failing the test, for
// goroutines other than the test's.
func tryCall(method, url, token string, body any, out any) (int, error) {
	code, _, err := tryCallWith(method, url, token, nil, body, out)
	return code, err
}

func tryCallWith(method, url, token string, header map[string]string, body any, out any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return 0, nil, fmt.Errorf("%s %s: decode %s: %w", method, url, raw, err)
		}
	}
	return res.StatusCode, res.Header, nil
}

// badCursor asks the list at url with a cursor this API never returned, with
// one holding a control character and with two cursors, and fails unless they
// are answered 422 invalid_cursor, invalid_text and invalid_request, as every
// list of the contract answers them (the recorder checks each code against
// the answer's x-codes).
func badCursor(t *testing.T, url, token string) {
	t.Helper()
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for cursor, want := range map[string]string{
		"not-a-cursor": "invalid_cursor", "%01": "invalid_text", "a&cursor=b": "invalid_request",
	} {
		req, err := http.NewRequest(http.MethodGet, url+sep+"cursor="+cursor, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(raw, &p)
		if res.StatusCode != http.StatusUnprocessableEntity || p.Code != want {
			t.Errorf("GET %s with cursor %s: %d %s, want 422 %s", url, cursor, res.StatusCode, raw, want)
		}
	}
}

// TestInventoryAndCartThroughTheEdge drives stock administration and the
// cart through the public edge; the cart functions read prices from the
// real get-product function through the gateway.
func TestInventoryAndCartThroughTheEdge(t *testing.T) {
	catalogURL := pgtest.NewDatabase(t)
	inventoryURL := pgtest.NewDatabase(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "itest:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		rdb, err := cartredis.NewClient(ctx, redisconn.Config{Addr: "127.0.0.1:6379"})
		if err != nil {
			t.Error(err)
			return
		}
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	rt := runtimetest.Start(t, runtimetest.Options{
		Functions: []string{"get-product", "get-stock", "set-stock", "get-cart", "set-cart-item", "clear-cart"},
		Env: map[string]string{
			"CATALOG_DATABASE_URL":   catalogURL,
			"INVENTORY_DATABASE_URL": inventoryURL,
			"REDIS_ADDR":             "127.0.0.1:6379",
			"CART_KEY_PREFIX":        prefix + "cart:",
			"PRODUCT_CACHE_PREFIX":   prefix + "product:",
		},
		ReadyTimeout: 3 * time.Minute,
	})

	// Products come from the catalog's own store (its events and search
	// documents included), as create-product would write them.
	ctx := context.Background()
	pool, err := postgres.Open(ctx, postgres.Config{URL: catalogURL, Migrations: catalogdb.Migrations(), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	products := catalogdb.New(pool)
	create := func(sku string, amount int64) catalog.Product {
		p, err := catalog.NewProduct(catalog.Draft{SKU: sku, Name: "Item " + sku, Category: "test",
			Price: catalog.Money{Amount: amount, Currency: "USD"}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if p, err = products.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mug, pen := create("IT-MUG-1", 1299), create("IT-PEN-1", 250)

	tokens, err := auth.ParseSigner(rt.ReadSecret(t, "jwt-signing-key"), 0)
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := tokens.Issue(uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	alice, _ := tokens.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	bob, _ := tokens.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	edge := rt.EdgeURL + "/api/v1"

	// Stock administration: a conditional write, on the ETag of a read.
	if got := call(t, http.MethodGet, edge+"/inventory/"+mug.ID.String(), "", nil, nil); got != 404 {
		t.Fatalf("get-stock before stocking: %d, want 404", got)
	}
	firstStock := map[string]string{"If-None-Match": "*"}
	if got, _ := callWith(t, http.MethodPut, edge+"/inventory/"+mug.ID.String(), alice, firstStock, map[string]any{"on_hand": 5}, nil); got != 403 {
		t.Fatalf("set-stock as customer: %d, want 403", got)
	}
	if got, _ := callWith(t, http.MethodPut, edge+"/inventory/"+uuid.Must(uuid.NewV7()).String(), admin, firstStock, map[string]any{"on_hand": 5}, nil); got != 404 {
		t.Fatalf("set-stock of unknown product: %d, want 404", got)
	}
	if got := call(t, http.MethodPut, edge+"/inventory/"+mug.ID.String(), admin, map[string]any{"on_hand": 30}, nil); got != 428 {
		t.Fatalf("set-stock without If-Match or If-None-Match: %d, want 428", got)
	}
	var st inventory.View
	got, h := callWith(t, http.MethodPut, edge+"/inventory/"+mug.ID.String(), admin, firstStock, map[string]any{"on_hand": 30}, &st)
	if got != 200 || st.Available != 30 || st.Version != 1 || h.Get("ETag") == "" {
		t.Fatalf("set-stock (first stocking): %d %+v ETag %q", got, st, h.Get("ETag"))
	}
	if got, _ := callWith(t, http.MethodPut, edge+"/inventory/"+mug.ID.String(), admin, firstStock, map[string]any{"on_hand": 31}, nil); got != 412 {
		t.Fatalf("set-stock If-None-Match: * again: %d, want 412", got)
	}
	got, h = callWith(t, http.MethodGet, edge+"/inventory/"+mug.ID.String(), "", nil, nil, &st)
	read := h.Get("ETag")
	if got != 200 || st.OnHand != 30 || read == "" {
		t.Fatalf("get-stock: %d %+v ETag %q", got, st, read)
	}
	// The level moves between the read and the write (here another write;
	// in production a reservation, the sweep's sale, a restock): the write
	// decided on the read is refused and changes nothing.
	if got, _ = callWith(t, http.MethodPut, edge+"/inventory/"+mug.ID.String(), admin, map[string]string{"If-Match": read}, map[string]any{"on_hand": 25}, &st); got != 200 || st.OnHand != 25 {
		t.Fatalf("set-stock on the ETag read: %d %+v", got, st)
	}
	if got, _ := callWith(t, http.MethodPut, edge+"/inventory/"+mug.ID.String(), admin, map[string]string{"If-Match": read}, map[string]any{"on_hand": 35}, nil); got != 412 {
		t.Fatalf("set-stock on a stale ETag: %d, want 412", got)
	}
	got, h = callWith(t, http.MethodGet, edge+"/inventory/"+mug.ID.String(), "", nil, nil, &st)
	if got != 200 || st.OnHand != 25 || h.Get("ETag") == read {
		t.Fatalf("get-stock after the refused write: %d %+v ETag %q (read before: %q)", got, st, h.Get("ETag"), read)
	}

	// The cart.
	var v cart.View
	if got := call(t, http.MethodPut, edge+"/cart/items/"+mug.ID.String(), alice, map[string]any{"quantity": 2}, &v); got != 200 {
		t.Fatalf("add mug: %d", got)
	}
	if got := call(t, http.MethodPut, edge+"/cart/items/"+pen.ID.String(), alice, map[string]any{"quantity": 3}, &v); got != 200 {
		t.Fatalf("add pen: %d", got)
	}
	if got := call(t, http.MethodPut, edge+"/cart/items/"+uuid.Must(uuid.NewV7()).String(), alice, map[string]any{"quantity": 1}, nil); got != 404 {
		t.Fatalf("add unknown product: %d, want 404", got)
	}
	if got := call(t, http.MethodGet, edge+"/cart", alice, nil, &v); got != 200 || len(v.Items) != 2 || v.Total.Amount != 2*1299+3*250 {
		t.Fatalf("get-cart: %d %+v", got, v)
	}
	if got := call(t, http.MethodGet, edge+"/cart", bob, nil, &v); got != 200 || len(v.Items) != 0 {
		t.Fatalf("bob's cart: %d %+v", got, v)
	}
	if got := call(t, http.MethodGet, edge+"/cart", "", nil, nil); got != 401 {
		t.Fatalf("get-cart without token: %d, want 401", got)
	}
	if got := call(t, http.MethodDelete, edge+"/cart", alice, nil, nil); got != 204 {
		t.Fatalf("clear-cart: %d, want 204", got)
	}
	if got := call(t, http.MethodGet, edge+"/cart", alice, nil, &v); got != 200 || len(v.Items) != 0 || v.Total.Amount != 0 {
		t.Fatalf("cart after clear: %d %+v", got, v)
	}
}
