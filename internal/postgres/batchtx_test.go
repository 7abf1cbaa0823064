package postgres_test

import (
	"context"
	"errors"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// batchTxPool is a pool of ONE connection over a fresh database with a table
// t (id int primary key, n int CHECK (n >= 0)): a transaction that kept its
// connection would make the next use of the pool wait.
func batchTxPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	migrations := fstest.MapFS{"0001_t.sql": {Data: []byte(`CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL CHECK (n >= 0))`)}}
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: pgtest.NewDatabase(t), Migrations: migrations, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// rowsOfT counts t's rows and names the backend of the pool's connection.
func rowsOfT(t *testing.T, pool *pgxpool.Pool) (rows, backend int) {
	t.Helper()
	// A deadline only so that a connection never given back fails the test
	// instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pool.QueryRow(ctx, `SELECT count(*), pg_backend_pid() FROM t`).Scan(&rows, &backend); err != nil {
		t.Fatalf("count (was the connection given back?): %v", err)
	}
	return rows, backend
}

// A BatchTx commits everything its batches wrote, in one round trip per
// batch, or nothing; either way its connection goes back to the pool idle.
func TestBatchTxCommitsAllOrNothing(t *testing.T) {
	pool := batchTxPool(t)
	counted, rt := pgtest.Counted(t, pool)
	ctx := context.Background()

	// Committed: BEGIN + INSERT, then UPDATE … RETURNING, then INSERT + COMMIT.
	rt.Reset()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO t VALUES (1, 5)`)
	tx, br := postgres.BeginBatch(ctx, counted, b)
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	b = &pgx.Batch{}
	b.Queue(`UPDATE t SET n = n - 1 WHERE id = 1 RETURNING n`)
	var n int
	br = tx.SendBatch(ctx, b)
	if err := br.QueryRow().Scan(&n); err != nil || n != 4 {
		t.Fatalf("update: %d %v", n, err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	b = &pgx.Batch{}
	b.Queue(`INSERT INTO t VALUES (2, 1)`)
	if err := tx.Commit(ctx, b); err != nil {
		t.Fatalf("commit: %v", err)
	}
	tx.Rollback(ctx) // deferred by callers: a no-op now
	if got := rt.Counts(); got != (pgtest.Counts{Trips: 3, Statements: 5, Commits: 1, Durable: 1}) {
		t.Errorf("counts %+v, want 3 round trips (BEGIN and COMMIT inside), 5 statements, 1 commit (durable)", got)
	}
	rows, backend := rowsOfT(t, counted)
	if rows != 2 {
		t.Fatalf("%d rows, want 2", rows)
	}

	cases := map[string]func(ctx context.Context) error{
		// A statement of the commit batch fails (CHECK): COMMIT is skipped.
		"failing statement before COMMIT": func(ctx context.Context) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO t VALUES (3, 1)`)
			tx, br := postgres.BeginBatch(ctx, counted, b)
			defer tx.Rollback(ctx)
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			b = &pgx.Batch{}
			b.Queue(`UPDATE t SET n = n - 10 WHERE id = 1`)
			b.Queue(`INSERT INTO t VALUES (4, 1)`)
			return tx.Commit(ctx, b)
		},
		// The first batch fails (duplicate key): the caller rolls back.
		"failing first batch": func(ctx context.Context) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO t VALUES (5, 1)`)
			b.Queue(`INSERT INTO t VALUES (1, 1)`)
			tx, br := postgres.BeginBatch(ctx, counted, b)
			defer tx.Rollback(ctx)
			return br.Close()
		},
		// The caller decides not to write after reading.
		"rolled back": func(ctx context.Context) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO t VALUES (6, 1)`)
			tx, br := postgres.BeginBatch(ctx, counted, b)
			defer tx.Rollback(ctx)
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			return errRolledBack
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			if err := run(ctx); err == nil {
				t.Fatal("no error")
			}
			rows, b := rowsOfT(t, counted)
			if rows != 2 {
				t.Errorf("%d rows, want the 2 committed before", rows)
			}
			if b != backend {
				t.Errorf("the pool's connection was replaced (backend %d, was %d): it was not given back idle", b, backend)
			}
		})
	}
}

var errRolledBack = errors.New("rolled back by the caller")

// ExecTx commits its statements in one round trip or nothing — a failing
// statement (here a CHECK) skips the rest, COMMIT included — and gives its
// connection back idle and alive. A caller whose deadline passes while the
// batch runs still learns that it committed: the batch is not cut short.
func TestExecTx(t *testing.T) {
	pool := batchTxPool(t)
	counted, rt := pgtest.Counted(t, pool)
	ctx := context.Background()
	_, backend := rowsOfT(t, pool)

	b := &pgx.Batch{}
	b.Queue(`INSERT INTO t VALUES (1, 5)`)
	b.Queue(`INSERT INTO t VALUES (2, 5)`)
	rt.Reset()
	if err := postgres.ExecTx(ctx, counted, b); err != nil {
		t.Fatal(err)
	}
	if c := rt.Counts(); c.Trips != 1 || c.Commits != 1 {
		t.Errorf("ExecTx: %+v, want 1 round trip and 1 commit", c)
	}
	b = &pgx.Batch{}
	b.Queue(`INSERT INTO t VALUES (3, 5)`)
	b.Queue(`UPDATE t SET n = n - 6 WHERE id = 1`) // violates the CHECK
	b.Queue(`INSERT INTO t VALUES (4, 5)`)
	if err := postgres.ExecTx(ctx, pool, b); err == nil {
		t.Fatal("a failing statement: ExecTx answered nil")
	}
	if rows, b2 := rowsOfT(t, pool); rows != 2 || b2 != backend {
		t.Fatalf("after the failed batch: %d rows (want 2), backend %d (want %d: the connection reused)", rows, b2, backend)
	}

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	b = &pgx.Batch{}
	b.Queue(`SELECT pg_sleep(0.5)`)
	b.Queue(`INSERT INTO t VALUES (5, 5)`)
	err := postgres.ExecTx(short, pool, b)
	rows, _ := rowsOfT(t, pool)
	if err != nil || rows != 3 {
		t.Fatalf("a deadline passed during the batch: %v, %d rows; want it committed (3 rows) and said so", err, rows)
	}
}
