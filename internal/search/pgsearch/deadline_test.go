package pgsearch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/pgsearch"
)

// A search held behind a lock ends at its caller's deadline with that
// deadline's error: a read has no outcome to learn, so it owes the caller no
// wait beyond it. Sent as a commit (ExecTx, on a detached context), it
// waited the commit's own 10 s and ended with an "outcome unknown" *Doubt.
func TestSearchEndsAtTheCallersDeadline(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.Open(t, catalogdb.Migrations())
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Rollback(context.Background()) })
	if _, err := lock.Exec(ctx, `LOCK TABLE search_documents IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = pgsearch.New(pool).Search(dctx, search.Query{Text: "headphones", Limit: 20})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("search behind a lock: %v; want the caller's context.DeadlineExceeded", err)
	}
	var d *postgres.Doubt
	if errors.As(err, &d) {
		t.Errorf("search behind a lock: %v; a read is no commit in doubt", err)
	}
	if took > 3*time.Second {
		t.Errorf("search behind a lock answered after %v; want about its caller's 300 ms", took)
	}

	// The lock gone, the pool still searches (the cancelled read's
	// connection was dropped or given back clean).
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pgsearch.New(pool).Search(ctx, search.Query{Text: "headphones", Limit: 20}); err != nil {
		t.Errorf("search after the lock: %v", err)
	}
}
