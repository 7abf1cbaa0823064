package function

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
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

// refundedAtTheProcessor is a processor that answers Void with a refund, as
// the simulator does of a charge refunded by hand (here without the charge).
type refundedAtTheProcessor struct{ payments.Processor }

func (refundedAtTheProcessor) Void(_ context.Context, _ string) (payments.Result, error) {
	return payments.Result{Outcome: payments.OutcomeRefunded, Reference: "re_1",
		Amount: payments.Money{Amount: 500, Currency: "USD"}, Customer: uuid.New()}, nil
}

// A refund the processor made of a charge we hold no row of has no payment
// id: the answer leaves the id out rather than send the zero UUID.
func TestARefundWithoutAStoredPaymentAnswersNoID(t *testing.T) {
	pool := pgtest.Open(t, paymentsdb.Migrations())
	proc := refundedAtTheProcessor{simulator.New(paymentsdb.NewSimLedger(pool), simulator.Config{})}
	svc := payments.NewService(paymentsdb.New(pool), proc, payments.ServiceConfig{})
	h := New(svc, fntest.Internal(), slog.New(slog.DiscardHandler))
	order := uuid.NewString()
	code, out := fntest.Call(t, h, credential, `{"order_id":"`+order+`"}`)
	if code != http.StatusOK || out["status"] != "refunded" || out["order_id"] != order || out["provider_ref"] != "re_1" {
		t.Fatalf("refund: %d %v", code, out)
	}
	if id, ok := out["id"]; ok {
		t.Errorf("answer carries id %v for a payment that was never stored", id)
	}
}

// The order id is read only in its canonical form (either case,
// docs/security.md): another spelling uuid.UUID's own decoding reads is 400
// invalid_json and refunds nothing (fnhttp.OrderCall, which commit-stock and
// release-stock share). Until 2026-12-07 it was read as the id it spells.
func TestRefundPaymentReadsTheOrderIDOnlyInItsCanonicalForm(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, paymentsdb.Migrations())
	ledger := paymentsdb.NewSimLedger(pool)
	svc := payments.NewService(paymentsdb.New(pool), simulator.New(ledger, simulator.Config{}), payments.ServiceConfig{})
	h := New(svc, fntest.Internal(), slog.New(slog.DiscardHandler))
	captured := payments.ChargeRequest{OrderID: uuid.Must(uuid.NewV7()), UserID: uuid.New(),
		Amount: payments.Money{Amount: 500, Currency: "USD"}, Token: simulator.TokenVisa}
	if _, err := svc.Charge(ctx, captured); err != nil {
		t.Fatal(err)
	}
	fntest.RefusesOtherSpellings(t, h, credential, captured.OrderID, "",
		func(other string) string { return `{"order_id":"` + other + `"}` }, func(t *testing.T) {
			if n, err := ledger.Count(ctx, "refund"); err != nil || n != 0 {
				t.Fatalf("a refused call refunded: %d refunds %v", n, err)
			}
		})
	if code, out := fntest.Call(t, h, credential, `{"order_id":"`+strings.ToUpper(captured.OrderID.String())+`"}`); code != http.StatusOK || out["status"] != "refunded" {
		t.Fatalf("upper-case id: %d %v, want refunded", code, out)
	}
}

// A refund the processor refuses is 422 invalid_refund, as docs/checkout.md
// lists it: the processor holds no captured charge of the payment's
// reference and amount (the simulator refunds a charge only in full, and a
// stored amount other than the charge's is our record disagreeing with the
// processor's). Nothing moves, the payment stays captured with its claim
// released, and a retry gets the same answer at once.
func TestARefundTheProcessorRefusesIsInvalidRefund(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, paymentsdb.Migrations())
	ledger := paymentsdb.NewSimLedger(pool)
	store := paymentsdb.New(pool)
	svc := payments.NewService(store, simulator.New(ledger, simulator.Config{}), payments.ServiceConfig{})
	h := New(svc, fntest.Internal(), slog.New(slog.DiscardHandler))
	req := payments.ChargeRequest{OrderID: uuid.Must(uuid.NewV7()), UserID: uuid.New(),
		Amount: payments.Money{Amount: 500, Currency: "USD"}, Token: simulator.TokenVisa}
	if _, err := svc.Charge(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE payments SET amount = 499 WHERE order_id = $1`, req.OrderID); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		code, out := fntest.Call(t, h, credential, `{"order_id":"`+req.OrderID.String()+`"}`)
		if code != http.StatusUnprocessableEntity || out["code"] != "invalid_refund" {
			t.Fatalf("refund %d of 499 of a 500 charge: %d %v, want 422 invalid_refund", i+1, code, out)
		}
	}
	if p, err := store.ByOrder(ctx, req.OrderID); err != nil || p.Status != payments.StatusCaptured {
		t.Errorf("the payment after the refusal: %+v %v, want captured", p, err)
	}
	if n, err := ledger.Count(ctx, "refund"); err != nil || n != 0 {
		t.Errorf("processor refunds %d %v, want none", n, err)
	}
}
