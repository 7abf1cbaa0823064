package function

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// credential is a caller charge-payment accepts.
var credential = fntest.Caller("create-order")

func setup(t *testing.T) (http.Handler, *paymentsdb.SimLedger) {
	t.Helper()
	pool := pgtest.Open(t, paymentsdb.Migrations())
	ledger := paymentsdb.NewSimLedger(pool)
	svc := payments.NewService(paymentsdb.New(pool), simulator.New(ledger, simulator.Config{}), payments.ServiceConfig{})
	return New(svc, fntest.Internal(), slog.New(slog.DiscardHandler)), ledger
}

func charge(order uuid.UUID, token string) string {
	return `{"order_id":"` + order.String() + `","user_id":"` + uuid.NewString() +
		`","amount":{"amount":2599,"currency":"EUR"},"token":"` + token + `"}`
}

func TestChargePayment(t *testing.T) {
	h, ledger := setup(t)
	order := uuid.Must(uuid.NewV7())
	body := charge(order, "tok_visa")
	if code, out := fntest.Call(t, h, "", body); code != http.StatusUnauthorized || out["code"] != "unauthenticated" {
		t.Errorf("no credential: %d %v", code, out)
	}
	// Only the saga's drivers may charge: every other valid caller (cancel-
	// order, the connectors, an operator) is 403 and charges nothing.
	fntest.RefusesOtherCallers(t, h, "charge-payment", body)
	if n, err := ledger.Count(t.Context(), "charge"); err != nil || n != 0 {
		t.Fatalf("a refused caller charged: %d processor charges %v", n, err)
	}
	var wg sync.WaitGroup
	answers := make([]map[string]any, 20)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			caller := []string{"create-order", "recover-orders"}[i%2] // both drive checkouts
			code, out := fntest.Call(t, h, fntest.Caller(caller), body)
			if code != http.StatusOK {
				t.Errorf("charge by %s: %d %v", caller, code, out)
			}
			answers[i] = out
		}()
	}
	wg.Wait()
	first := answers[0]
	if first["status"] != "captured" || first["provider_ref"] == "" || first["order_id"] != order.String() {
		t.Fatalf("charge: %v", first)
	}
	if amount, _ := first["amount"].(map[string]any); amount["amount"] != 2599.0 || amount["currency"] != "EUR" {
		t.Errorf("amount %v", first["amount"])
	}
	for i, a := range answers {
		if a["id"] != first["id"] || a["provider_ref"] != first["provider_ref"] {
			t.Errorf("answer %d differs: %v", i, a)
		}
	}
	if n, err := ledger.Count(t.Context(), "charge"); err != nil || n != 1 {
		t.Errorf("processor charges %d %v, want 1", n, err)
	}

	declined := charge(uuid.Must(uuid.NewV7()), "tok_chargeDeclinedInsufficientFunds")
	for range 2 {
		if code, out := fntest.Call(t, h, credential, declined); code != http.StatusPaymentRequired || out["code"] != "payment_declined" {
			t.Errorf("decline: %d %v", code, out)
		}
	}
	before, err := ledger.Count(t.Context(), "charge")
	if err != nil {
		t.Fatal(err)
	}
	if code, out := fntest.Call(t, h, credential, charge(uuid.Must(uuid.NewV7()), "tok_unknown")); code != http.StatusUnprocessableEntity || out["code"] != "invalid_payment_token" {
		t.Errorf("invalid token: %d %v, want 422 invalid_payment_token", code, out)
	}
	if n, err := ledger.Count(t.Context(), "charge"); err != nil || n != before {
		t.Errorf("processor charges %d %v after an invalid token, want %d: nothing charged", n, err, before)
	}
}

func TestChargePaymentRefusesBadInput(t *testing.T) {
	h, _ := setup(t)
	o, u := uuid.NewString(), uuid.NewString()
	cases := map[string]string{
		"unknown field":        `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":1,"currency":"USD"},"token":"tok_visa","card":"4242"}`,
		"unknown amount field": `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":1,"currency":"USD","cents":1},"token":"tok_visa"}`,
		"negative amount":      `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":-100,"currency":"USD"},"token":"tok_visa"}`,
		"zero amount":          `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":0,"currency":"USD"},"token":"tok_visa"}`,
		"float amount":         `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":12.99,"currency":"USD"},"token":"tok_visa"}`,
		"string amount":        `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":"1299","currency":"USD"},"token":"tok_visa"}`,
		"huge amount":          `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":1e30,"currency":"USD"},"token":"tok_visa"}`,
		"bad currency":         `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":1,"currency":"dollars"},"token":"tok_visa"}`,
		"amount as number":     `{"order_id":"` + o + `","user_id":"` + u + `","amount":1299,"token":"tok_visa"}`,
		"no token":             `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":1,"currency":"USD"}}`,
		"token wrong type":     `{"order_id":"` + o + `","user_id":"` + u + `","amount":{"amount":1,"currency":"USD"},"token":7}`,
		"no user":              `{"order_id":"` + o + `","amount":{"amount":1,"currency":"USD"},"token":"tok_visa"}`,
		"bad order id":         `{"order_id":"x","user_id":"` + u + `","amount":{"amount":1,"currency":"USD"},"token":"tok_visa"}`,
		"not json":             `amount=1`,
		"too large":            `{"token":"` + strings.Repeat("a", 5000) + `"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			code, out := fntest.Call(t, h, credential, body)
			if code < 400 || code >= 500 || out["code"] == nil {
				t.Errorf("%d %v, want a 4xx problem", code, out)
			}
		})
	}
}

// Both ids are read only in their canonical form (either case,
// docs/security.md): another spelling uuid.UUID's own decoding reads is 400
// invalid_json and charges nothing at the processor. Until 2026-12-07 charge-
// payment read them as the ids they spell (braces captured a charge, the
// other spellings met the first charge's key: 409 payment_mismatch).
func TestChargePaymentReadsIDsOnlyInTheirCanonicalForm(t *testing.T) {
	h, ledger := setup(t)
	body := func(order, user string) string {
		return `{"order_id":"` + order + `","user_id":"` + user +
			`","amount":{"amount":2599,"currency":"EUR"},"token":"tok_visa"}`
	}
	order, user := uuid.Must(uuid.NewV7()), uuid.New()
	nothingCharged := func(t *testing.T) {
		if n, err := ledger.Count(t.Context(), "charge"); err != nil || n != 0 {
			t.Fatalf("a refused spelling charged: %d processor charges %v", n, err)
		}
	}
	fntest.RefusesOtherSpellings(t, h, credential, order, "order_id ",
		func(other string) string { return body(other, user.String()) }, nothingCharged)
	fntest.RefusesOtherSpellings(t, h, credential, user, "user_id ",
		func(other string) string { return body(order.String(), other) }, nothingCharged)
	code, out := fntest.Call(t, h, credential, body(strings.ToUpper(order.String()), strings.ToUpper(user.String())))
	if code != http.StatusOK || out["status"] != "captured" || out["order_id"] != order.String() {
		t.Fatalf("upper-case ids: %d %v, want captured for %s", code, out, order)
	}
	if n, err := ledger.Count(t.Context(), "charge"); err != nil || n != 1 {
		t.Errorf("processor charges %d %v, want 1", n, err)
	}
}
