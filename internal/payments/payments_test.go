package payments_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/payments"
)

func TestMoneyValidate(t *testing.T) {
	cases := []struct {
		m  payments.Money
		ok bool
	}{
		{payments.Money{Amount: 1, Currency: "USD"}, true},
		{payments.Money{Amount: payments.MaxAmount, Currency: "EUR"}, true},
		{payments.Money{Amount: 0, Currency: "USD"}, false},
		{payments.Money{Amount: -1299, Currency: "USD"}, false},
		{payments.Money{Amount: payments.MaxAmount + 1, Currency: "USD"}, false},
		{payments.Money{Amount: 1, Currency: "usd"}, false},
		{payments.Money{Amount: 1, Currency: "US"}, false},
		{payments.Money{Amount: 1}, false},
	}
	for _, c := range cases {
		err := c.m.Validate()
		if (err == nil) != c.ok || (err != nil && !fault.Is(err, fault.Invalid, "invalid_request")) {
			t.Errorf("%+v: %v", c.m, err)
		}
	}
}

func TestOutcomeAndSameCharge(t *testing.T) {
	p := payments.Payment{OrderID: uuid.New(), UserID: uuid.New(), Status: payments.StatusDeclined,
		DeclineCode: "insufficient_funds", Amount: payments.Money{Amount: 5, Currency: "USD"}}
	_, err := p.Outcome()
	if !fault.Is(err, fault.PaymentRequired, "payment_declined") || !strings.Contains(err.Error(), "insufficient_funds") {
		t.Errorf("declined outcome: %v", err)
	}
	p.Status = payments.StatusCaptured
	if _, err := p.Outcome(); err != nil {
		t.Errorf("captured outcome: %v", err)
	}
	req := payments.ChargeRequest{OrderID: p.OrderID, UserID: p.UserID, Amount: p.Amount, Token: "tok_visa"}
	if err := p.SameCharge(req); err != nil {
		t.Errorf("same charge: %v", err)
	}
	req.UserID = uuid.New()
	if err := p.SameCharge(req); !fault.Is(err, fault.Conflict, "payment_mismatch") {
		t.Errorf("other user: %v", err)
	}
	if payments.ChargeKey(p.OrderID) == payments.RefundKey(p.OrderID) {
		t.Error("charge and refund keys must differ")
	}
}

// A token over MaxTokenLength is refused saying so, not "token is required".
func TestChargeRequestNamesWhatIsWrongWithTheToken(t *testing.T) {
	req := payments.ChargeRequest{OrderID: uuid.New(), UserID: uuid.New(),
		Amount: payments.Money{Amount: 5, Currency: "USD"}}
	for token, want := range map[string]string{
		"": "token is required",
		strings.Repeat("a", payments.MaxTokenLength+1): "token is longer than 255 bytes",
	} {
		req.Token = token
		err := req.Validate()
		if !fault.Is(err, fault.Invalid, "invalid_request") || !strings.Contains(err.Error(), want) {
			t.Errorf("token of %d bytes: %v, want %q", len(token), err, want)
		}
	}
	req.Token = strings.Repeat("a", payments.MaxTokenLength)
	if err := req.Validate(); err != nil {
		t.Errorf("token of %d bytes: %v", payments.MaxTokenLength, err)
	}
}
