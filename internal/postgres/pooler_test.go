package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// Functions may reach their databases through PgBouncer in transaction mode
// (docs/deploy-kubernetes.md), Debian's 1.18 here: it keeps no prepared
// statement and no session between transactions. Before, pgx's statement
// cache failed there ("prepared statement … already exists"), and the
// migration lock, a session's, stayed held on the server connection that took
// it, which no later unlock reached. Now a URL through a pooler must say how
// queries are sent, migrations run over a direct URL when any is pending and
// take no lock when none is, and nothing is left locked.
func TestOpenThroughPgBouncer(t *testing.T) {
	ctx := context.Background()
	direct := pgtest.NewDatabase(t)
	pooled := pgtest.PgBouncer(t, direct, "default_query_exec_mode=exec")
	migrations := fstest.MapFS{
		"0001_a.sql": {Data: []byte(`CREATE TABLE a (id int PRIMARY KEY)`)},
		"0002_b.sql": {Data: []byte(`INSERT INTO a SELECT generate_series(1, 10)`)},
	}
	admin, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	noLockLeft := func(when string) {
		t.Helper()
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d advisory locks held in the database, want none", when, n)
		}
	}

	closeIfOpened := func(p *pgxpool.Pool) {
		if p != nil {
			p.Close()
		}
	}
	p, err := postgres.Open(ctx, postgres.Config{URL: strings.Replace(pooled, "default_query_exec_mode=exec", "", 1), MaxConns: 2})
	closeIfOpened(p)
	if !errors.Is(err, postgres.ErrPoolerUnsaid) {
		t.Errorf("a URL through PgBouncer that does not say default_query_exec_mode: %v, want ErrPoolerUnsaid", err)
	}

	p, err = postgres.Open(ctx, postgres.Config{URL: pooled, Migrations: migrations, MaxConns: 2})
	closeIfOpened(p)
	if err == nil || !strings.Contains(err.Error(), "0001_a.sql is pending") || !strings.Contains(err.Error(), "pooler") {
		t.Errorf("migrations pending through PgBouncer without a migration URL: %v, want a refusal naming 0001_a.sql and the pooler", err)
	}
	noLockLeft("after the refusal")

	// Replicas starting at once: the migrations run over the direct URL,
	// once, and every pool then works through PgBouncer.
	const replicas = 3
	pools := make([]*pgxpool.Pool, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			pools[i], errs[i] = postgres.Open(ctx, postgres.Config{URL: pooled, MigrationURL: direct, Migrations: migrations, MaxConns: 2})
		})
	}
	wg.Wait()
	for i, p := range pools {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		t.Cleanup(p.Close)
		for k := range 20 { // more statements than PgBouncer has server connections
			var n int
			if err := p.QueryRow(ctx, `SELECT count(*) FROM a WHERE id > $1`, k%10).Scan(&n); err != nil {
				t.Fatalf("replica %d, query %d through PgBouncer: %v", i, k, err)
			}
			if n != 10-k%10 {
				t.Fatalf("replica %d counts %d rows above %d, want %d (a migration ran twice or not at all)", i, n, k%10, 10-k%10)
			}
		}
	}
	var recorded int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != 2 {
		t.Errorf("%d migrations recorded, want 2", recorded)
	}
	noLockLeft("after the replicas migrated")

	// Nothing pending: a replica through PgBouncer alone opens, and locks
	// nothing; one given a direct URL does not dial it (nothing listens
	// there).
	for _, migrationURL := range []string{"", "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=2"} {
		p, err := postgres.Open(ctx, postgres.Config{URL: pooled, MigrationURL: migrationURL, Migrations: migrations, MaxConns: 2})
		if err != nil {
			t.Fatalf("nothing pending, through PgBouncer (migration URL %q): %v", migrationURL, err)
		}
		p.Close()
	}
	noLockLeft("after replicas found nothing pending")
}

// Settle behind a real PgBouncer (TestSettleBehindAPoolerFailsClosed
// simulates one): the write's connection reports PgBouncer's process id, not
// its server process's, so Settle must say it does not know.
func TestSettleBehindPgBouncerFailsClosed(t *testing.T) {
	ctx := context.Background()
	admin := pgtest.Open(t, fstest.MapFS{"0001_keys.sql": {Data: []byte(`CREATE TABLE keys (k int PRIMARY KEY)`)}})
	url := pgtest.PgBouncer(t, admin.Config().ConnConfig.ConnString(), "default_query_exec_mode=exec")
	through, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(through.Close)
	// PgBouncer passes a cancel request on: dropped, the write runs on.
	pool, _ := pgtest.WithoutCancels(t, through)
	if err := pool.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	settleFailsClosed(t, admin, pool)
}
