package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/dev/load"
)

// r3Schema is the least an order needs in PostgreSQL: stock with a
// no-oversell constraint, payments unique by idempotency key, orders, and an
// outbox shaped like internal/outbox's (jsonb envelope, xid8, pending index).
//
// The stock table is created with fillfactor 10, so its 58 rows start spread
// over a few pages, as the rows of a stock table that has been updated for a
// while are. Created full, all 58 fit in one page and every client's UPDATE
// waits for that page's lock until the updates have spread the rows. In two
// short runs (R3 twice, the checkout, R3), R3's first run was the slowest
// without it and not with it (873 → 972 → 951 and 910 → 991 → 1,046
// orders/s; with fillfactor 10, 1,005 → 1,019 → 970 and 871 → 892 → 841); in
// the full benchmarks of that machine R3 before the checkout was still
// slower than after it, for a reason not found (on a faster machine later it
// was as often faster), which is why each ratio is to the mean of both
// (reference).
const r3Schema = `
CREATE TABLE r3_stock (product_id integer PRIMARY KEY, available integer NOT NULL CHECK (available >= 0))
	WITH (fillfactor = 10);
CREATE TABLE r3_payments (id uuid PRIMARY KEY, idempotency_key text NOT NULL UNIQUE, amount bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE r3_orders (id uuid PRIMARY KEY, status text NOT NULL, total bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE r3_outbox (seq bigserial PRIMARY KEY, id uuid NOT NULL UNIQUE, type text NOT NULL,
	envelope jsonb NOT NULL, transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
	created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz);
CREATE INDEX r3_outbox_pending ON r3_outbox (transaction_id, seq) WHERE published_at IS NULL;
INSERT INTO r3_stock SELECT g, 100000000 FROM generate_series(0, 57) g;`

// r3Products is the number of stock rows the reference spreads its orders
// over, like the demo catalog's 58 products.
const r3Products = 58

// r3 is the physical reference of every checkout figure: the three
// synchronous-commit transactions an order needs at the least, sent by Go +
// pgx straight to PostgreSQL the way pgbench sends a script (BEGIN, the two
// statements, COMMIT: four round trips per transaction):
//
//  1. reserve stock (conditional UPDATE) + its outbox row;
//  2. capture the payment (INSERT, unique idempotency key) + its outbox row;
//  3. confirm the order (INSERT confirmed) + its order.placed outbox row.
//
// It runs on a database of its own with one connection per client.
type r3 struct {
	pool *pgxpool.Pool
}

// newR3 creates the reference's tables in a fresh database; the pool holds
// up to clients connections and is closed when the benchmark ends.
func (s *bench) newR3(ctx context.Context, url string, clients int) *r3 {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		s.b.Fatal(err)
	}
	pc.MaxConns = int32(clients)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		s.b.Fatalf("r3 pool: %v", err)
	}
	s.b.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, r3Schema); err != nil {
		s.b.Fatalf("r3 schema: %v", err)
	}
	r := &r3{pool: pool}
	if err := r.warmUp(ctx, clients); err != nil {
		s.b.Fatalf("r3 warm-up: %v", err)
	}
	return r
}

// warmUp opens the pool's clients connections, all held at once so that
// none of the clients of a measured run is the one to open it, then places
// warmUpOrders orders per client, clients at once, as every checkout scenario
// is warmed up before it is measured (bench.warmUp).
func (r *r3) warmUp(ctx context.Context, clients int) error {
	held := make([]*pgxpool.Conn, 0, clients)
	var err error
	for range clients {
		var c *pgxpool.Conn
		if c, err = r.pool.Acquire(ctx); err != nil {
			break
		}
		held = append(held, c)
	}
	for _, h := range held {
		h.Release()
	}
	if err != nil {
		return err
	}
	return warmUpClients(ctx, clients, r.order)
}

// warmUpClients places warmUpOrders orders per client, clients at once.
func warmUpClients(ctx context.Context, clients int, order func(ctx context.Context, n int) error) error {
	var next atomic.Int64
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for range warmUpOrders {
				if errs[c] = order(ctx, int(next.Add(1))); errs[c] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// order runs the three transactions of one order.
func (r *r3) order(ctx context.Context, n int) error {
	product := n % r3Products
	orderID, paymentID := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	env := func(typ string) string {
		return fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"r3","subject":%q,"data":{"order_id":%q}}`,
			typ, orderID, orderID)
	}
	steps := []func(tx pgx.Tx) error{
		func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE r3_stock SET available = available - 1 WHERE product_id = $1 AND available >= 1`, product)
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("r3: product %d out of stock", product)
			}
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO r3_outbox (id, type, envelope) VALUES ($1, 'stock.reserved.v1', $2)`,
				uuid.Must(uuid.NewV7()), env("stock.reserved.v1"))
			return err
		},
		func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO r3_payments (id, idempotency_key, amount) VALUES ($1, $2, 1250)`,
				paymentID, orderID.String()); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO r3_outbox (id, type, envelope) VALUES ($1, 'payment.captured.v1', $2)`,
				uuid.Must(uuid.NewV7()), env("payment.captured.v1"))
			return err
		},
		func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO r3_orders (id, status, total) VALUES ($1, 'confirmed', 1250)`, orderID); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO r3_outbox (id, type, envelope) VALUES ($1, 'order.placed.v1', $2)`,
				uuid.Must(uuid.NewV7()), env("order.placed.v1"))
			return err
		},
	}
	for _, step := range steps {
		if err := pgx.BeginFunc(ctx, r.pool, step); err != nil {
			return err
		}
	}
	return nil
}

// run drives clients closed loops of orders for d (runOrders).
func (r *r3) run(ctx context.Context, clients int, d time.Duration) (load.Result, error) {
	return runOrders(ctx, clients, d, r.order)
}

// runOrders drives clients closed loops of order, numbered from 1, for d and
// measures them like load.Run measures HTTP requests (Status counts 200 for
// a completed order).
func runOrders(ctx context.Context, clients int, d time.Duration, order func(ctx context.Context, n int) error) (load.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	res := load.Result{Latency: load.NewHistogram(), Status: map[int]int{}}
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			h := load.NewHistogram()
			n, failed := 0, 0
			var werr error
			for ctx.Err() == nil {
				begin := time.Now()
				// The run's deadline is not the order's: an order in flight at the end completes.
				err := order(context.WithoutCancel(ctx), int(next.Add(1)))
				h.Record(time.Since(begin))
				n++
				if err != nil {
					failed++
					werr = cmp.Or(werr, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Requests += n
			res.Latency.Merge(h)
			res.Status[200] += n - failed
			if failed > 0 {
				res.Status[load.StatusTransport] += failed
				firstErr = cmp.Or(firstErr, werr)
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.FirstError = firstErr
	return res, nil
}
