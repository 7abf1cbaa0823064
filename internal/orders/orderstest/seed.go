package orderstest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
)

// Seed writes an order of userID for one unit of a new product at 5.00 USD
// and moves it to status (through the domain's state machine and
// ordersdb.Store.Update), for tests of the read functions.
func Seed(tb testing.TB, store *ordersdb.Store, userID uuid.UUID, status orders.Status) orders.Order {
	tb.Helper()
	ctx := context.Background()
	price := orders.Money{Amount: 500, Currency: "USD"}
	lines := []orders.Line{{ProductID: uuid.Must(uuid.NewV7()), Quantity: 1, UnitPrice: price}}
	o, err := orders.New(userID, lines, price, orders.Address{Name: "Ada", Line1: "1 Loop Rd", City: "S", PostalCode: "1", Country: "US"}, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	if err := store.Create(ctx, ordersdb.Placement{Order: o, PaymentToken: "tok_visa", Lease: time.Minute}); err != nil {
		tb.Fatal(err)
	}
	if status != orders.Pending {
		// A bare move (no event, no compensation), so the read functions see
		// a timeline of order.created and the move only.
		o, err = store.Update(ctx, o.ID, func(o *orders.Order) (orders.Change, error) {
			return orders.Change{Step: "order." + string(status)}, o.MoveTo(status, "", time.Now())
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return o
}
