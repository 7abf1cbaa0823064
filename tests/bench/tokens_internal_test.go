package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
)

// TestOrdersCarryANewCustomerWithoutSigningWhileTimed: building an order
// signs no token once the scenario's tokens are signed (an Ed25519
// signature and its claims are ~60 allocations; the request itself needs
// about 20), and every order still carries a token of its own, a valid
// customer's, also once the pre-signed ones have run out.
func TestOrdersCarryANewCustomerWithoutSigningWhileTimed(t *testing.T) {
	signer, _, _ := auth.NewTestKeys(time.Hour)
	const signed = 40
	tokens, err := newCustomerTokens(signer, signed)
	if err != nil {
		t.Fatal(err)
	}
	product := uuid.Must(uuid.NewV7())
	build := orderRequests(tokens, "http://127.0.0.1:1/function/create-order/api/v1/orders",
		func(int) uuid.UUID { return product })

	allocs := testing.AllocsPerRun(signed/2-1, func() {
		if _, err := build(0, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 30 {
		t.Errorf("building an order allocates %.0f times, want at most 30: is it signing a token?", allocs)
	}

	verifier := signer.Verifier()
	subjects := map[uuid.UUID]bool{}
	for n := range signed {
		req, err := build(0, n)
		if err != nil {
			t.Fatal(err)
		}
		id, err := verifier.Verify(strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
		if err != nil {
			t.Fatalf("order %d: %v", n, err)
		}
		if id.Role != auth.RoleCustomer || subjects[id.UserID] {
			t.Fatalf("order %d: role %q, customer seen before: %v", n, id.Role, subjects[id.UserID])
		}
		subjects[id.UserID] = true
	}
}
