//go:build !race

// The race detector adds allocations of its own: counts are taken without it.

package ordersgw_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
	"github.com/shopfaas/shop/internal/orders/saga"
)

// canned answers every call with status and body without a network, so a
// test counts the gateway client's own work.
type canned struct {
	status int
	body   string
}

func (c canned) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return &http.Response{StatusCode: c.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(c.body)), Request: r}, nil
}

// TestASagaCallAllocatesLittle: the allocations of the client's side of the
// saga's three calls per order (reserve-stock, charge-payment, commit-stock),
// the transport excluded. Issue 11: create-order spends a checkout's CPU on
// these calls; the URL is located once per function, the headers are one
// prepared map copied, and a body nobody reads is drained without a buffer
// and a 2-line reserve sizes its lines once (34, 30 and 40 allocations
// before).
func TestASagaCallAllocatesLittle(t *testing.T) {
	order, user := uuid.New(), uuid.New()
	amount := orders.Money{Amount: 1999, Currency: "EUR"}
	capture := `{"id":"` + uuid.NewString() + `","order_id":"` + order.String() +
		`","status":"captured","amount":{"amount":1999,"currency":"EUR"},"provider_ref":"sim_1"}`
	gw := func(body string) *ordersgw.Gateway {
		g, err := ordersgw.New("http://gateway:8080", "internal", &http.Client{Transport: canned{200, body}}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	stock, payments := gw(`{"order_id":"x"}`), gw(capture)
	ctx := context.Background()
	lines := []orders.Line{{ProductID: uuid.New(), Quantity: 1}, {ProductID: uuid.New(), Quantity: 2}}
	for _, c := range []struct {
		name string
		max  float64
		call func() error
	}{
		{"reserve-stock", 30, func() error { return stock.Reserve(ctx, order, lines) }},
		{"commit-stock", 27, func() error { return stock.Commit(ctx, order) }},
		{"charge-payment", 38, func() error {
			return payments.Charge(ctx, saga.Charge{OrderID: order, UserID: user, Amount: amount, Token: "tok_visa"})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(200, func() { _ = c.call() })
			t.Logf("%s: %.0f allocations per call", c.name, allocs)
			if c.max > 0 && allocs > c.max {
				t.Errorf("%s: %.0f allocations per call, want at most %.0f", c.name, allocs, c.max)
			}
		})
	}
}
