package inbox_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func migrations() fstest.MapFS {
	return fstest.MapFS{
		"0001_init.sql": {Data: []byte(inbox.Schema + "\nCREATE TABLE effects (n int NOT NULL);")},
	}
}

// Ten concurrent deliveries of one event apply its effect exactly once; a
// second consumer of the same event in the same database still gets it.
func TestClaimOnce(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	id, _ := uuid.NewV7()
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
				first, err := inbox.Claim(ctx, tx, id, "counter")
				if err != nil || !first {
					return err
				}
				firsts.Add(1)
				_, err = tx.Exec(ctx, `INSERT INTO effects VALUES (1)`)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 || firsts.Load() != 1 {
		t.Errorf("%d effects, %d first claims; want 1 and 1", n, firsts.Load())
	}
	err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, id, "mailer")
		if err == nil && !first {
			err = errors.New("another consumer's claim blocked this one")
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}

// A claim whose transaction rolls back is no claim: the redelivery applies.
func TestRolledBackClaimIsRetried(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	id, _ := uuid.NewV7()
	boom := errors.New("effect failed")
	err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := inbox.Claim(ctx, tx, id, "c"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	err = postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, id, "c")
		if err == nil && !first {
			err = errors.New("rolled-back claim still counted")
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
	err = postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		_, err := inbox.Claim(ctx, tx, uuid.Nil, "c")
		return err
	})
	if err == nil {
		t.Error("nil event id accepted")
	}
}

// Prune deletes only records older than the retention, and is a no-op in a
// database without the table.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	old, fresh := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	for _, id := range []uuid.UUID{old, fresh} {
		if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error { _, err := inbox.Claim(ctx, tx, id, "c"); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE processed_events SET processed_at = now() - interval '40 days' WHERE event_id = $1`, old); err != nil {
		t.Fatal(err)
	}
	n, err := inbox.Prune(ctx, pool, 30*24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1 record deleted", n, err)
	}
	var left []uuid.UUID
	rows, _ := pool.Query(ctx, `SELECT event_id FROM processed_events`)
	for rows.Next() {
		var id uuid.UUID
		_ = rows.Scan(&id)
		left = append(left, id)
	}
	rows.Close()
	if len(left) != 1 || left[0] != fresh {
		t.Errorf("left %v, want only %v", left, fresh)
	}
	empty := pgtest.Open(t, fstest.MapFS{"0001_none.sql": {Data: []byte(`CREATE TABLE other (n int);`)}})
	if n, err := inbox.Prune(ctx, empty, time.Hour); err != nil || n != 0 {
		t.Errorf("Prune without the table = %d, %v; want 0, nil", n, err)
	}
}

// QueueClaim in a batched transaction (postgres.BatchTx) whose effect rides in
// the claim's batch: of ten concurrent deliveries exactly one reports first
// and commits; the others roll their effect back.
func TestQueueClaimOnce(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	id, _ := uuid.NewV7()
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first bool
			b := &pgx.Batch{}
			if err := inbox.QueueClaim(b, id, "counter", &first); err != nil {
				t.Error(err)
				return
			}
			b.Queue(`INSERT INTO effects VALUES (1)`)
			tx, br := postgres.BeginBatch(ctx, pool, b)
			defer tx.Rollback(ctx)
			if err := br.Close(); err != nil {
				t.Error(err)
				return
			}
			if !first {
				return
			}
			firsts.Add(1)
			if err := tx.Commit(ctx, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 || firsts.Load() != 1 {
		t.Errorf("%d effects, %d first claims; want 1 and 1", n, firsts.Load())
	}
	var first bool
	if err := inbox.QueueClaim(&pgx.Batch{}, uuid.Nil, "c", &first); err == nil {
		t.Error("nil event id accepted")
	}
}
