// Package pgtest gives each test its own freshly migrated database on the real
// PostgreSQL server, dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
)

// ServerURL is the PostgreSQL server tests use: $TEST_DATABASE_URL, or the local
// server with trust authentication.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// URL returns the URL of database name on the test server.
func URL(tb testing.TB, name string) string {
	tb.Helper()
	cc, err := pgx.ParseConfig(ServerURL())
	if err != nil {
		tb.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	return "postgres://" + cc.User + "@" + cc.Host + ":" + strconv.Itoa(int(cc.Port)) + "/" + name + "?sslmode=disable"
}

// NewDatabase creates an empty database with a random name and drops it when
// the test ends. The test fails (never skips) when PostgreSQL is unreachable,
// unless it runs with -short.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	url, create := MissingDatabase(tb)
	create()
	return url
}

// MissingDatabase returns the URL of a database with a random name that does
// not exist yet, for a test of what a client does until it does, and
// create, which creates it empty (call it from the test's goroutine: it
// fails the test when it cannot). The database is dropped when the test
// ends, whoever created it. The test fails (never skips) when PostgreSQL is
// unreachable, unless it runs with -short.
func MissingDatabase(tb testing.TB) (url string, create func()) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs PostgreSQL; -short was asked for")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "test_" + hex.EncodeToString(b)
	tb.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), ServerURL())
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return URL(tb, name), func() {
		tb.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			tb.Fatalf("PostgreSQL is required for this test (%s): %v", ServerURL(), err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			tb.Fatalf("create test database: %v", err)
		}
	}
}

// Open creates a fresh database, applies migrations and returns a pool closed
// at the end of the test.
func Open(tb testing.TB, migrations fs.FS) *pgxpool.Pool {
	tb.Helper()
	url := NewDatabase(tb)
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: url, Migrations: migrations, MaxConns: 8})
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// Connect opens one connection to the database at url (a database the code
// under test opened, NewDatabase's), closed at the end of the test.
func Connect(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatalf("connect to the test database: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// RowsRead is the number of rows of table that tx has read so far, by
// sequential scans and fetched through the table's indexes
// (pg_stat_xact_user_tables): what tells a walk of a few keys from a scan.
func RowsRead(tb testing.TB, tx pgx.Tx, table string) int64 {
	tb.Helper()
	var n int64
	if err := tx.QueryRow(context.Background(), `SELECT seq_tup_read + coalesce(idx_tup_fetch, 0)
		FROM pg_stat_xact_user_tables WHERE relname = $1`, table).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// PlanModes are the plan_cache_mode values that force a statement's plan:
// the custom plan of each run's values, and the generic plan PostgreSQL may
// cache on a session for a prepared statement after five runs (pgx prepares
// every statement on its connection).
var PlanModes = []string{"force_custom_plan", "force_generic_plan"}

// RowsReadUnder runs read in a transaction of pool's whose plan_cache_mode is
// mode, rolled back after, and returns the rows of table it read (RowsRead):
// for the tests that a page reads its own rows whatever plan runs it.
func RowsReadUnder(tb testing.TB, pool *pgxpool.Pool, mode, table string, read func(tx pgx.Tx)) int64 {
	tb.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT set_config('plan_cache_mode', $1, true)`, mode); err != nil {
		tb.Fatal(err)
	}
	read0 := RowsRead(tb, tx, table)
	read(tx)
	return RowsRead(tb, tx, table) - read0
}
