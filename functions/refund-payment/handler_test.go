package function

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// credential is a caller refund-payment accepts.
var credential = fntest.Caller("cancel-order")

func TestRefundPayment(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, paymentsdb.Migrations())
	ledger := paymentsdb.NewSimLedger(pool)
	svc := payments.NewService(paymentsdb.New(pool), simulator.New(ledger, simulator.Config{}), payments.ServiceConfig{})
	h := New(svc, fntest.Internal(), slog.New(slog.DiscardHandler))
	captured := payments.ChargeRequest{OrderID: uuid.Must(uuid.NewV7()), UserID: uuid.New(),
		Amount: payments.Money{Amount: 500, Currency: "USD"}, Token: simulator.TokenVisa}
	charged, err := svc.Charge(ctx, captured)
	if err != nil {
		t.Fatal(err)
	}
	declined := captured
	declined.OrderID, declined.Token = uuid.Must(uuid.NewV7()), simulator.TokenDeclined
	if _, err := svc.Charge(ctx, declined); err == nil {
		t.Fatal("decline expected")
	}

	body := `{"order_id":"` + captured.OrderID.String() + `"}`
	if code, _ := fntest.Call(t, h, "", body); code != http.StatusUnauthorized {
		t.Errorf("no credential: %d", code)
	}
	fntest.RefusesOtherCallers(t, h, "refund-payment", body) // the connectors, the scheduler, an operator
	if n, err := ledger.Count(ctx, "refund"); err != nil || n != 0 {
		t.Fatalf("a refused caller refunded: %d refunds %v", n, err)
	}
	for range 2 {
		code, out := fntest.Call(t, h, credential, body)
		if code != http.StatusOK || out["status"] != "refunded" || out["provider_ref"] != charged.ProviderRef {
			t.Fatalf("refund: %d %v", code, out)
		}
	}
	if n, err := ledger.Count(ctx, "refund"); err != nil || n != 1 {
		t.Errorf("processor refunds %d %v, want 1", n, err)
	}
	if code, out := fntest.Call(t, h, credential, `{"order_id":"`+declined.OrderID.String()+`"}`); code != http.StatusOK || out["status"] != "declined" {
		t.Errorf("declined: %d %v", code, out)
	}
	if code, out := fntest.Call(t, h, credential, `{"order_id":"`+uuid.NewString()+`"}`); code != http.StatusOK || out["status"] != "none" {
		t.Errorf("never charged: %d %v", code, out)
	}
	for name, bad := range map[string]string{
		"unknown field": `{"order_id":"` + captured.OrderID.String() + `","amount":5}`,
		"wrong type":    `{"order_id":1}`,
		"missing":       `{}`,
	} {
		if code, out := fntest.Call(t, h, credential, bad); code < 400 || code >= 500 || out["code"] == nil {
			t.Errorf("%s: %d %v, want 4xx", name, code, out)
		}
	}
}
