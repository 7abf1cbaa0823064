package inbox_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

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
