package postgres_test

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/tcpproxy"
)

// A commit whose server has gone silent (a half-open connection) ends within
// Detached's timeout, with an error, and its connection leaves the pool
// within pgx's own bound: the slot is free for the next caller instead of
// held for as long as the kernel retransmits. Each way of committing: Tx, a
// BatchTx and ExecTx.
func TestACommitToASilentServerGivesItsSlotBack(t *testing.T) {
	postgres.SetFinishTimeout(t, 300*time.Millisecond)
	for name, commit := range map[string]func(context.Context, *pgxpool.Pool, *tcpproxy.Proxy) error{
		"Tx": func(ctx context.Context, pool *pgxpool.Pool, p *tcpproxy.Proxy) error {
			return postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1)`); err != nil {
					return err
				}
				p.Silence()
				return nil
			})
		},
		"BatchTx": func(ctx context.Context, pool *pgxpool.Pool, p *tcpproxy.Proxy) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO t VALUES (1)`)
			tx, br := postgres.BeginBatch(ctx, pool, b)
			if err := br.Close(); err != nil {
				return err
			}
			p.Silence()
			return tx.Commit(ctx, nil)
		},
		"ExecTx": func(ctx context.Context, pool *pgxpool.Pool, p *tcpproxy.Proxy) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO t VALUES (1)`)
			p.Silence()
			return postgres.ExecTx(ctx, pool, b)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // Tx waits out pgx's 15 s for its slot
			pool, proxy := pgtest.Silent(t, fstest.MapFS{"0001_t.sql": {Data: []byte(`CREATE TABLE t (id int PRIMARY KEY)`)}})
			ctx := context.Background()
			done := make(chan error, 1)
			go func() { done <- commit(ctx, pool, proxy) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("a commit nobody answered succeeded")
				}

			case <-time.After(10 * time.Second):
				proxy.Cut() // or the pool's cleanup waits on the commit forever
				t.Fatal("the commit still waits on a silent server 10 s on; Detached's timeout is 300 ms")
			}
			if name != "Tx" {
				return // the slot's release is pgx's, the same for each
			}
			// pgx closes the connection the timeout ended, waiting at most
			// 15 s for the server's goodbye (pgconn's asyncClose), after
			// which the pool frees its slot.
			for deadline := time.Now().Add(20 * time.Second); pool.Stat().TotalConns() != 0; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections still in the pool 20 s after the commit returned, want 0", pool.Stat().TotalConns())
				}
			}
		})
	}
}

// Detached bounds a transaction's commit, not its work: a transaction whose
// work outlasts the bound (here 300 ms; a lock wait, a password hash inside
// it) still commits.
func TestASlowTransactionStillCommits(t *testing.T) {
	postgres.SetFinishTimeout(t, 300*time.Millisecond)
	pool := batchTxPool(t)
	ctx := context.Background()
	err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1, 1)`); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatalf("a transaction that took 500 ms: %v, want it committed", err)
	}
	if rows, _ := rowsOfT(t, pool); rows != 1 {
		t.Errorf("%d rows, want the 1 the transaction wrote", rows)
	}
}

// DeleteBatches stops after its maximum of batches: what is left goes at the
// next call.
func TestDeleteBatchesStopsAtItsMaximum(t *testing.T) {
	pool := batchTxPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO t SELECT i, 0 FROM generate_series(1, $1::int) i`, 2*postgres.DeleteBatch+1); err != nil {
		t.Fatal(err)
	}
	del := `DELETE FROM t WHERE ctid = ANY(ARRAY(SELECT ctid FROM t ORDER BY id LIMIT $1))`
	if n, err := postgres.DeleteBatches(ctx, pool, 1, del); err != nil || n != postgres.DeleteBatch {
		t.Fatalf("one batch: %d, %v; want %d", n, err, postgres.DeleteBatch)
	}
	if n, err := postgres.DeleteBatches(ctx, pool, 0, del); err != nil || n != postgres.DeleteBatch+1 {
		t.Fatalf("no maximum: %d, %v; want the %d left", n, err, postgres.DeleteBatch+1)
	}
}
