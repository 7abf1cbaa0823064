package bench

import (
	"cmp"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/dev/load"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// sqlCheckout is the checkout's own database work without its functions:
// what create-order, reserve-stock and charge-payment ask of PostgreSQL for
// one confirmed one-line order with an Idempotency-Key, through the same
// stores, sent from this process to three databases of its own — the key's
// read, the pending order's write beside the hold, the charge (the
// simulator's ledger, then the payment), the confirmation with its timeline
// — and, after the run, the sweep that sells the confirmed holds, as the
// checkout scenario's window includes it. No HTTP, token, JSON, Redis or
// pricing. Its orders/s as a ratio to R3 is what the checkout would reach if
// its functions, hops and load generator cost nothing beyond pgx.
type sqlCheckout struct {
	orders   *ordersdb.Store
	stock    *inventorydb.Store
	payments *payments.Service
	products []uuid.UUID
}

// sqlCheckoutStock is every product's stock: ample, so every order is confirmed.
const sqlCheckoutStock = 1_000_000

// newSQLCheckout migrates the three databases (pools of clients connections,
// closed when the benchmark ends), stocks products and warms the stores up
// as every checkout scenario is (warmUpOrders orders per client).
func newSQLCheckout(tb testing.TB, ctx context.Context, urls map[string]string, clients int, products []uuid.UUID) *sqlCheckout {
	pool := func(label string) *pgxpool.Pool {
		cfg := postgres.Config{URL: urls[label], MaxConns: int32(clients)}
		switch label {
		case "orders":
			cfg.Migrations = ordersdb.Migrations()
		case "inventory":
			cfg.Migrations = inventorydb.Migrations()
		case "payments":
			cfg.Migrations = paymentsdb.Migrations()
		}
		p, err := postgres.Open(ctx, cfg)
		if err != nil {
			tb.Fatalf("checkout SQL, %s database: %v", label, err)
		}
		tb.Cleanup(p.Close)
		return p
	}
	pay := pool("payments")
	c := &sqlCheckout{
		orders:   ordersdb.New(pool("orders")),
		stock:    inventorydb.New(pool("inventory")),
		payments: payments.NewService(paymentsdb.New(pay), simulator.New(paymentsdb.NewSimLedger(pay), simulator.Config{}), payments.ServiceConfig{}),
		products: products,
	}
	for _, p := range products {
		if _, err := c.stock.Init(ctx, p, sqlCheckoutStock); err != nil {
			tb.Fatalf("checkout SQL, stock: %v", err)
		}
	}
	if err := cmp.Or(warmUpClients(ctx, clients, c.order), c.settle(ctx)); err != nil {
		tb.Fatalf("checkout SQL, warm-up: %v", err)
	}
	return c
}

// order places order n as the saga does (internal/orders/saga Place and drive).
func (c *sqlCheckout) order(ctx context.Context, n int) error {
	user, key := uuid.New(), uuid.NewString()
	product := c.products[n%len(c.products)]
	req := orders.PlaceRequest{Items: []orders.ItemRequest{{ProductID: product, Quantity: 1}},
		ShippingAddress: orders.Address{Name: "Ada Lovelace", Line1: "1 Loop Road", City: "London", PostalCode: "N1", Country: "GB"},
		Payment:         orders.PaymentMethod{Token: "tok_visa"}}
	price := orders.Money{Amount: 1250, Currency: "USD"}
	o, err := orders.New(user, []orders.Line{{ProductID: product, Quantity: 1, UnitPrice: price}}, price, req.ShippingAddress, time.Now())
	if err != nil {
		return err
	}
	hash := req.Hash()
	if _, err := c.orders.CheckKey(ctx, user, key, hash, 0); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	hold, err := inventory.NewHoldRequest(o.ID, []inventory.Line{{ProductID: product, Quantity: 1}}, 0)
	if err != nil {
		return err
	}
	held := make(chan error, 1)
	go func() {
		_, err := c.stock.Reserve(ctx, hold)
		held <- err
	}()
	created := c.orders.Create(ctx, ordersdb.Placement{Order: o, PaymentToken: req.Payment.Token, Key: key, RequestHash: hash, Lease: time.Minute})
	if err := cmp.Or(<-held, created); err != nil {
		return fmt.Errorf("hold and pending order: %w", err)
	}
	reserved := ordersdb.Note{At: time.Now(), Step: orders.StepReserve, Outcome: orders.StepOK, Detail: "stock held"}
	if _, err := c.payments.Charge(ctx, payments.ChargeRequest{OrderID: o.ID, UserID: user,
		Amount: payments.Money{Amount: price.Amount, Currency: price.Currency}, Token: req.Payment.Token}); err != nil {
		return fmt.Errorf("charge: %w", err)
	}
	charged := ordersdb.Note{At: time.Now(), Step: orders.StepCharge, Outcome: orders.StepOK, Detail: "payment captured"}
	if _, err := c.orders.UpdateKnown(ctx, o, func(o *orders.Order) (orders.Change, error) { return o.Confirm(time.Now()) },
		reserved, charged); err != nil {
		return fmt.Errorf("confirm: %w", err)
	}
	return nil
}

// settle sells every confirmed order's hold, in the sweep's batches
// (inventorydb.Store.Settle, order statuses read from the orders database
// as order-statuses reads them).
func (c *sqlCheckout) settle(ctx context.Context) error {
	statuses := func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]inventory.OrderStatus, error) {
		st, err := c.orders.Statuses(ctx, ids)
		out := make(map[uuid.UUID]inventory.OrderStatus, len(st))
		for id, s := range st {
			out[id] = inventory.OrderStatus(s)
		}
		return out, err
	}
	const batch = 500
	var cur inventory.SettleCursor
	for {
		res, err := c.stock.Settle(ctx, cur, 0, batch, statuses)
		if err != nil || res.Scanned < batch { // a short batch was the last
			return err
		}
		cur = res.Next
	}
}

// run drives clients closed loops of orders for d, then settles their holds
// (inside the measured window, outside the orders' latencies), and measures
// them like R3 (r3.run).
func (c *sqlCheckout) run(ctx context.Context, clients int, d time.Duration) (load.Result, error) {
	res, err := runOrders(ctx, clients, d, c.order)
	if err != nil {
		return res, err
	}
	return res, c.settle(ctx)
}

// The checkout's own SQL places real orders: each one confirmed, its payment
// captured, and, once the run has settled, its unit of stock sold, with
// nothing left reserved.
func TestSQLCheckoutPlacesRealOrders(t *testing.T) {
	ctx := context.Background()
	urls := map[string]string{"orders": pgtest.NewDatabase(t), "inventory": pgtest.NewDatabase(t),
		"payments": pgtest.NewDatabase(t)}
	products := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	c := newSQLCheckout(t, ctx, urls, 2, products)
	res, err := c.run(ctx, 2, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors(load.Success) != 0 {
		t.Fatalf("%d orders, %d failed, first: %v", res.Requests, res.Errors(load.Success), res.FirstError)
	}
	want := res.Requests + 2*warmUpOrders
	count := func(label, query string) int {
		conn, err := pgx.Connect(ctx, urls[label])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		return n
	}
	if n := count("orders", `SELECT count(*) FROM orders WHERE status = 'confirmed'`); n != want {
		t.Errorf("%d confirmed orders, want %d", n, want)
	}
	if n := count("payments", `SELECT count(*) FROM payments WHERE status = 'captured'`); n != want {
		t.Errorf("%d captured payments, want %d", n, want)
	}
	sold, reserved := 0, 0
	for _, p := range products {
		st, err := c.stock.Get(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		sold += sqlCheckoutStock - st.OnHand
		reserved += st.Reserved
	}
	if sold != want || reserved != 0 {
		t.Errorf("%d units sold and %d reserved, want %d sold and none reserved", sold, reserved, want)
	}
}
