package function

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestGetPayment(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, paymentsdb.Migrations())
	svc := payments.NewService(paymentsdb.New(pool), simulator.New(paymentsdb.NewSimLedger(pool), simulator.Config{}), payments.ServiceConfig{})
	tokens, err := auth.NewTokens("a-test-signing-key-of-at-least-32-bytes!", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h := New(svc, tokens, slog.New(slog.DiscardHandler))
	owner := uuid.Must(uuid.NewV7())
	req := payments.ChargeRequest{OrderID: uuid.Must(uuid.NewV7()), UserID: owner,
		Amount: payments.Money{Amount: 1299, Currency: "USD"}, Token: simulator.TokenVisa}
	charged, err := svc.Charge(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, authz string) (int, map[string]any) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: %d %q", path, rec.Code, rec.Body)
		}
		return rec.Code, out
	}
	path := "/api/v1/orders/" + req.OrderID.String() + "/payment"
	for name, authz := range map[string]string{
		"owner": fntest.Bearer(t, tokens, owner, auth.RoleCustomer),
		"admin": fntest.Bearer(t, tokens, uuid.New(), auth.RoleAdmin),
	} {
		code, out := get(path, authz)
		if code != http.StatusOK || out["id"] != charged.ID.String() || out["status"] != "captured" || out["provider_ref"] != charged.ProviderRef {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
	if code, out := get(path, fntest.Bearer(t, tokens, uuid.New(), auth.RoleCustomer)); code != http.StatusNotFound || out["code"] != "not_found" {
		t.Errorf("another user: %d %v", code, out)
	}
	if code, _ := get(path, ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous: %d", code)
	}
	if code, _ := get(path, "Bearer forged.token.value"); code != http.StatusUnauthorized {
		t.Errorf("forged token: %d", code)
	}
	if code, _ := get("/api/v1/orders/not-a-uuid/payment", fntest.Bearer(t, tokens, owner, auth.RoleCustomer)); code != http.StatusNotFound {
		t.Errorf("bad id: %d", code)
	}
	if code, _ := get("/api/v1/orders/"+uuid.NewString()+"/payment", fntest.Bearer(t, tokens, owner, auth.RoleCustomer)); code != http.StatusNotFound {
		t.Errorf("unknown order: %d", code)
	}
}
