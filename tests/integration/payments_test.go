package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// internalCall posts body to an internal function through the gateway with
// the internal credential cred (none when empty) and decodes any JSON answer.
func internalCall(t *testing.T, gateway, fn, cred string, body any) (int, map[string]any) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, gateway+"/function/"+fn, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set(auth.InternalHeader, cred)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	defer res.Body.Close()
	out := map[string]any{}
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %d %q is not JSON", fn, res.StatusCode, b)
	}
	return res.StatusCode, out
}

// TestReservationsAndPaymentsThroughTheGateway runs the checkout's internal
// functions as real processes: hold, charge, commit, read, refund, restock.
func TestReservationsAndPaymentsThroughTheGateway(t *testing.T) {
	inventoryURL := pgtest.NewDatabase(t)
	paymentsURL := pgtest.NewDatabase(t)
	rt := runtimetest.Start(t, runtimetest.Options{
		Functions: []string{"reserve-stock", "commit-stock", "release-stock", "charge-payment", "refund-payment", "get-payment"},
		Env: map[string]string{
			"INVENTORY_DATABASE_URL": inventoryURL,
			"PAYMENTS_DATABASE_URL":  paymentsURL,
			"PAYMENT_SIM_LATENCY":    "20ms",
		},
		ReadyTimeout: 3 * time.Minute,
	})
	ctx := context.Background()
	pool, err := postgres.Open(ctx, postgres.Config{URL: inventoryURL, Migrations: inventorydb.Migrations(), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	stock := inventorydb.New(pool)
	product := uuid.Must(uuid.NewV7())
	if _, err := stock.SetOnHand(ctx, product, 5, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	level := func() [2]int {
		st, err := stock.Get(ctx, product)
		if err != nil {
			t.Fatal(err)
		}
		return [2]int{st.OnHand, st.Reserved}
	}
	cred := rt.ReadSecret(t, "internal-token-create-order") // the saga's caller
	gw := rt.GatewayURL
	order, user := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	hold := map[string]any{"order_id": order, "lines": []map[string]any{{"product_id": product, "quantity": 2}}}

	for _, fn := range []string{"reserve-stock", "commit-stock", "release-stock", "charge-payment", "refund-payment"} {
		if code, out := internalCall(t, gw, fn, "", map[string]any{"order_id": order}); code != http.StatusUnauthorized {
			t.Errorf("%s without credential: %d %v", fn, code, out)
		}
	}
	if code, out := internalCall(t, gw, "reserve-stock", cred, hold); code != http.StatusOK || out["status"] != "held" {
		t.Fatalf("reserve: %d %v", code, out)
	}
	if got := level(); got != [2]int{5, 2} {
		t.Errorf("after reserve %v", got)
	}
	charge := map[string]any{"order_id": order, "user_id": user, "amount": map[string]any{"amount": 2598, "currency": "USD"}, "token": "tok_visa"}
	code, paid := internalCall(t, gw, "charge-payment", cred, charge)
	if code != http.StatusOK || paid["status"] != "captured" {
		t.Fatalf("charge: %d %v", code, paid)
	}
	if code, again := internalCall(t, gw, "charge-payment", cred, charge); code != http.StatusOK || again["provider_ref"] != paid["provider_ref"] {
		t.Errorf("repeated charge: %d %v", code, again)
	}
	if code, out := internalCall(t, gw, "commit-stock", cred, map[string]any{"order_id": order}); code != http.StatusOK || out["status"] != "committed" {
		t.Fatalf("commit: %d %v", code, out)
	}
	if got := level(); got != [2]int{3, 0} {
		t.Errorf("after commit %v", got)
	}

	tokens, err := auth.ParseSigner(rt.ReadSecret(t, "jwt-signing-key"), 0)
	if err != nil {
		t.Fatal(err)
	}
	read := func(who uuid.UUID) int {
		tok, _ := tokens.Issue(who, auth.RoleCustomer)
		req, _ := http.NewRequest(http.MethodGet, gw+"/function/get-payment/api/v1/orders/"+order.String()+"/payment", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := read(user); code != http.StatusOK {
		t.Errorf("owner reads payment: %d", code)
	}
	if code := read(uuid.New()); code != http.StatusNotFound {
		t.Errorf("stranger reads payment: %d", code)
	}

	// Cancellation: refund once, restock once.
	for range 2 {
		if code, out := internalCall(t, gw, "refund-payment", cred, map[string]any{"order_id": order}); code != http.StatusOK || out["status"] != "refunded" {
			t.Fatalf("refund: %d %v", code, out)
		}
		if code, out := internalCall(t, gw, "release-stock", cred, map[string]any{"order_id": order}); code != http.StatusOK || out["status"] != "restocked" {
			t.Fatalf("release: %d %v", code, out)
		}
	}
	if got := level(); got != [2]int{5, 0} {
		t.Errorf("after cancellation %v", got)
	}

	declined := map[string]any{"order_id": uuid.Must(uuid.NewV7()), "user_id": user,
		"amount": map[string]any{"amount": 100, "currency": "USD"}, "token": "tok_chargeDeclined"}
	if code, out := internalCall(t, gw, "charge-payment", cred, declined); code != http.StatusPaymentRequired || out["code"] != "payment_declined" {
		t.Errorf("decline: %d %v", code, out)
	}
	if code, out := internalCall(t, gw, "charge-payment", cred, map[string]any{"order_id": order, "amount": -1}); code < 400 || code >= 500 {
		t.Errorf("bad input: %d %v", code, out)
	}
}
