package orderstest

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalogclient/catalogtest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
	"github.com/shopfaas/shop/internal/orders/saga"
)

// Checkout is a saga wired to a Server and a catalog fake, with one product
// (12.99 USD) in stock.
type Checkout struct {
	Saga    *saga.Saga
	Server  *Server
	Catalog *catalogtest.Server
	Product uuid.UUID
}

// NewCheckout wires a saga over store to new servers; stock units of the
// product are on hand. RecoverAfter is one minute.
func NewCheckout(tb testing.TB, store *ordersdb.Store, stock int) *Checkout {
	tb.Helper()
	c := &Checkout{Server: New(tb), Catalog: catalogtest.New(tb)}
	c.Product = c.Catalog.Add("SKU-"+uuid.NewString()[:8], 1299, "USD").ID
	c.Server.SetStock(c.Product, stock)
	gw, err := ordersgw.New(c.Server.URL, Token, nil, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	c.Saga, err = saga.New(saga.Config{Store: store, Stock: gw, Payments: gw, Catalog: c.Catalog.Client(tb),
		Log: slog.New(slog.DiscardHandler), Timeout: 10 * time.Second, Backoff: 20 * time.Millisecond, RecoverAfter: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Request is a checkout of qty units of the product paid with token.
func (c *Checkout) Request(qty int, token string) orders.PlaceRequest {
	return orders.PlaceRequest{
		Items:           []orders.ItemRequest{{ProductID: c.Product, Quantity: qty}},
		ShippingAddress: orders.Address{Name: "Ada", Line1: "1 Loop Rd", City: "Springfield", PostalCode: "12345", Country: "US"},
		Payment:         orders.PaymentMethod{Token: token},
	}
}
