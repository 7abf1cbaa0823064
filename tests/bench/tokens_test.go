package bench

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
)

// presignRate is how many orders per second of a run's duration get a token
// signed before the run: more than any checkout scenario has reached here
// (~420/s at 8 workers on an idle machine).
const presignRate = 1000

// customerTokens hands out access tokens of new customers, each token once,
// signed before the timed part of a run. A real client signs nothing: it
// reuses the token it was given, so an Ed25519 signature per order (~4 % of
// the benchmark process's CPU per checkout, in the process whose CPU the
// table reports) was the load generator's cost, not the shop's. Every order
// still carries a customer of its own, whose first check create-order pays
// in full. When the pre-signed tokens run out, the next ones are signed on
// demand.
type customerTokens struct {
	signer *auth.Signer
	signed []string
	next   atomic.Int64
}

// newCustomerTokens signs n customer tokens with signer.
func newCustomerTokens(signer *auth.Signer, n int) (*customerTokens, error) {
	t := &customerTokens{signer: signer, signed: make([]string, n)}
	for i := range t.signed {
		tok, err := signer.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
		if err != nil {
			return nil, err
		}
		t.signed[i] = tok
	}
	return t, nil
}

// presignFor is the number of tokens to sign for orders sent during d.
func presignFor(d time.Duration) int { return max(64, int(d.Seconds()*presignRate)) }

// take returns a token no earlier take returned.
func (t *customerTokens) take() (string, error) {
	if i := t.next.Add(1) - 1; i < int64(len(t.signed)) {
		return t.signed[i], nil
	}
	return t.signer.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
}

// orderRequests builds one-line orders for url, each by a new customer of
// tokens (so no per-consumer limit applies) with its own Idempotency-Key,
// for the product productFor(n).
func orderRequests(tokens *customerTokens, url string, productFor func(n int) uuid.UUID) func(int, int) (*http.Request, error) {
	return func(_, n int) (*http.Request, error) {
		tok, err := tokens.take()
		if err != nil {
			return nil, fmt.Errorf("customer token: %w", err)
		}
		body := `{"items":[{"product_id":"` + productFor(n).String() + `","quantity":1}],` +
			`"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},` +
			`"payment":{"token":"tok_visa"}}`
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Idempotency-Key", uuid.NewString())
		return req, nil
	}
}
