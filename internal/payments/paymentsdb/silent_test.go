package paymentsdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// A write that records the processor's answer, sent to a server gone silent
// (a half-open connection) on a context without a deadline — as Service
// calls them, detached from its caller — ends within the store's bound
// (postgres.Detached's, here 300 ms) with fault.Unavailable, and its
// connection leaves the pool: the next caller gets the slot instead of
// waiting for as long as the kernel retransmits. Each write: Record, Finish,
// Unclaim and Discard (the slot's release, pgx's and the same for each, is
// waited for after Record only: it takes 15 s).
func TestARecordingToASilentServerGivesItsSlotBack(t *testing.T) {
	res := payments.Result{Outcome: payments.OutcomeCaptured, Reference: "ch_silent"}
	for name, write := range map[string]func(context.Context, *paymentsdb.Store, uuid.UUID) error{
		"Record": func(ctx context.Context, s *paymentsdb.Store, orderID uuid.UUID) error {
			p := payments.Payment{ID: uuid.New(), OrderID: orderID, UserID: uuid.New(),
				Amount: payments.Money{Amount: 1000, Currency: "EUR"}}
			_, err := s.Record(ctx, p, res)
			return err
		},
		"Finish": func(ctx context.Context, s *paymentsdb.Store, orderID uuid.UUID) error {
			_, err := s.Finish(ctx, orderID, uuid.New(), res)
			return err
		},
		"Unclaim": func(ctx context.Context, s *paymentsdb.Store, orderID uuid.UUID) error {
			return s.Unclaim(ctx, orderID, uuid.New())
		},
		"Discard": func(ctx context.Context, s *paymentsdb.Store, orderID uuid.UUID) error {
			return s.Discard(ctx, orderID, uuid.New())
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, proxy := pgtest.Silent(t, paymentsdb.Migrations())
			store := paymentsdb.New(pool)
			paymentsdb.SetFinishTimeout(store, 300*time.Millisecond)
			ctx := context.Background()
			proxy.Silence()
			done := make(chan error, 1)
			go func() { done <- write(ctx, store, uuid.New()) }()
			select {
			case err := <-done:
				if !fault.Is(err, fault.Unavailable, "") {
					t.Fatalf("a write nobody answered: %v, want fault.Unavailable", err)
				}
			case <-time.After(10 * time.Second):
				proxy.Cut() // or the pool's cleanup waits on the write forever
				t.Fatalf("%s still waits on a silent server 10 s on; the store's bound is 300 ms", name)
			}
			if name != "Record" {
				return
			}
			// The pool's one slot comes back (pgx closes the connection
			// the timeout ended, waiting at most 15 s for the server's
			// goodbye): a new connection, which the proxy forwards, serves
			// the next caller.
			next, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if _, err := pool.Exec(next, `SELECT 1`); err != nil {
				t.Fatalf("the next statement on the pool: %v, want the slot given back", err)
			}
		})
	}
}
