package function

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/catalogclient/catalogtest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/orders/saga"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

type fixture struct {
	h       http.Handler
	pool    *pgxpool.Pool
	svc     *orderstest.Server
	carts   *cartredis.Store
	tokens  *auth.Tokens
	product uuid.UUID
}

// setup wires the real saga over a fresh orders database, the internal
// contracts over HTTP, the catalog fake and real Redis carts.
func setup(t *testing.T) *fixture {
	t.Helper()
	pool := pgtest.Open(t, ordersdb.Migrations())
	carts, _, _ := cartredistest.New(t, time.Hour)
	svc := orderstest.New(t)
	cat := catalogtest.New(t)
	p := cat.Add("SKU-1", 1299, "USD")
	svc.SetStock(p.ID, 10)
	gw, err := ordersgw.New(svc.URL, orderstest.Token, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := saga.New(saga.Config{Store: ordersdb.New(pool), Stock: gw, Payments: gw, Catalog: cat.Client(t),
		Cart: carts, Timeout: 10 * time.Second, RecoverAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tokens := orderstest.Tokens(t)
	return &fixture{h: New(tokens, sg, slog.New(slog.DiscardHandler)), pool: pool, svc: svc, carts: carts, tokens: tokens, product: p.ID}
}

func (f *fixture) body(qty int, token string) string {
	return `{"items":[{"product_id":"` + f.product.String() + `","quantity":` + itoa(qty) + `}],` +
		`"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},` +
		`"payment":{"token":"` + token + `"}}`
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (f *fixture) post(u orderstest.User, body, key string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/orders", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, u.Authorize(r))
	return rec
}

func code(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var p struct{ Code string }
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	return p.Code
}

func TestRefusesBadRequests(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	good := f.body(1, "tok_visa")
	with := func(field string) string { return strings.Replace(good, `{"items"`, `{`+field+`,"items"`, 1) }
	tests := []struct {
		name   string
		user   orderstest.User
		body   string
		status int
		code   string
	}{
		{"no token", orderstest.User{}, good, 401, "unauthenticated"},
		{"client total", u, with(`"total":{"amount":1,"currency":"USD"}`), 400, "invalid_json"},
		{"client user_id", u, with(`"user_id":"` + uuid.NewString() + `"`), 400, "invalid_json"},
		{"client status", u, with(`"status":"confirmed"`), 400, "invalid_json"},
		{"client unit price", u, strings.Replace(good, `"quantity":1`, `"quantity":1,"unit_price":{"amount":1,"currency":"USD"}`, 1), 400, "invalid_json"},
		{"client price", u, strings.Replace(good, `"quantity":1`, `"quantity":1,"price":1`, 1), 400, "invalid_json"},
		{"malformed", u, `{"items":`, 400, "invalid_json"},
		{"quantity as string", u, strings.Replace(good, `"quantity":1`, `"quantity":"1"`, 1), 400, "invalid_json"},
		{"bad product id", u, strings.Replace(good, f.product.String(), "nope", 1), 400, "invalid_json"},
		{"zero quantity", u, f.body(0, "tok_visa"), 422, "invalid_request"},
		{"huge quantity", u, f.body(1001, "tok_visa"), 422, "invalid_request"},
		{"card number", u, f.body(1, "4242424242424242"), 422, "invalid_request"},
		{"empty items", u, strings.Replace(good, `[{"product_id":"`+f.product.String()+`","quantity":1}]`, `[]`, 1), 422, "invalid_request"},
		{"no address", u, `{"items":[{"product_id":"` + f.product.String() + `","quantity":1}],"payment":{"token":"tok_visa"}}`, 422, "invalid_request"},
		{"unknown product", u, strings.Replace(good, f.product.String(), uuid.NewString(), 1), 422, "unknown_product"},
		{"empty cart", u, `{"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"S","postal_code":"1","country":"US"},"payment":{"token":"tok_visa"}}`, 422, "cart_empty"},
		{"too large", u, with(`"x":"` + strings.Repeat("a", 70<<10) + `"`), 413, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.post(tt.user, tt.body, "")
			if rec.Code != tt.status || code(t, rec) != tt.code {
				t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, tt.status, tt.code)
			}
		})
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d orders written by refused requests (%v)", n, err)
	}
}

func TestPlacesAndReplays(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	const n = 20
	recs := make([]*httptest.ResponseRecorder, n)
	f.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 200 * time.Millisecond, 0, 0
		}
		return 0, 0, 0
	})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); recs[i] = f.post(u, f.body(2, "tok_visa"), "abc-123") }()
	}
	wg.Wait()
	for i, rec := range recs {
		if rec.Code != http.StatusCreated || rec.Body.String() != recs[0].Body.String() {
			t.Fatalf("response %d: %d %s; response 0: %d %s", i, rec.Code, rec.Body, recs[0].Code, recs[0].Body)
		}
	}
	var v orders.View
	if err := json.Unmarshal(recs[0].Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != orders.Confirmed || v.Total.Amount != 2598 || v.CreatedAt.IsZero() {
		t.Fatalf("order %+v", v)
	}
	if c := f.svc.Counts(); c.Charges != 1 {
		t.Fatalf("%d charges, want 1", c.Charges)
	}
	replay := f.post(u, f.body(2, "tok_visa"), "abc-123")
	if replay.Header().Get("Idempotent-Replayed") != "true" || replay.Body.String() != recs[0].Body.String() {
		t.Fatalf("replay %d %v %s", replay.Code, replay.Header(), replay.Body)
	}
	if rec := f.post(u, f.body(3, "tok_visa"), "abc-123"); rec.Code != 409 || code(t, rec) != "idempotency_key_reused" {
		t.Fatalf("other body: %d %s", rec.Code, rec.Body)
	}
}

func TestCartIsEmptiedOnlyAfterConfirmation(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	cartBody := `{"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"S","postal_code":"1","country":"US"},"payment":{"token":"%s"}}`

	declined := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	if err := f.carts.SetLine(ctx, declined.UserID, f.product, 2, 50); err != nil {
		t.Fatal(err)
	}
	if rec := f.post(declined, strings.Replace(cartBody, "%s", "tok_chargeDeclined", 1), ""); rec.Code != http.StatusPaymentRequired {
		t.Fatalf("declined: %d %s", rec.Code, rec.Body)
	}
	if lines, err := f.carts.Lines(ctx, declined.UserID); err != nil || len(lines) != 1 {
		t.Fatalf("cart after a decline: %v %v", lines, err)
	}

	buyer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	if err := f.carts.SetLine(ctx, buyer.UserID, f.product, 3, 50); err != nil {
		t.Fatal(err)
	}
	rec := f.post(buyer, strings.Replace(cartBody, "%s", "tok_mastercard", 1), "")
	var v orders.View
	_ = json.Unmarshal(rec.Body.Bytes(), &v)
	if rec.Code != http.StatusCreated || len(v.Items) != 1 || v.Items[0].Quantity != 3 || v.Total.Amount != 3*1299 {
		t.Fatalf("cart order: %d %s", rec.Code, rec.Body)
	}
	if lines, err := f.carts.Lines(ctx, buyer.UserID); err != nil || len(lines) != 0 {
		t.Fatalf("cart after confirmation: %v %v", lines, err)
	}
}

func TestClientThatHangsUpDoesNotStopTheSaga(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	charged := make(chan struct{}, 1)
	f.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			charged <- struct{}{}
			return 500 * time.Millisecond, 0, 0
		}
		return 0, 0, 0
	})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/v1/orders", bytes.NewBufferString(f.body(1, "tok_visa")))
	req.Header.Set("Content-Type", "application/json")
	u.Authorize(req)
	go func() { <-charged; cancel() }() // hang up while the charge is in flight
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Fatalf("the request finished (%d) before the client hung up; the test proves nothing", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var status string
		err := f.pool.QueryRow(context.Background(), `SELECT status FROM orders`).Scan(&status)
		if err == nil && status == string(orders.Confirmed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order not confirmed after the client hung up: %q %v", status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := f.svc.Counts(); c.Commits != 1 || c.Captures != 1 {
		t.Fatalf("commits %d captures %d", c.Commits, c.Captures)
	}
}
