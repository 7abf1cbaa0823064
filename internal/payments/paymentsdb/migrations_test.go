package paymentsdb_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// migrationsUpTo is the payments migrations whose file names sort before
// first: the database as an earlier version left it.
func migrationsUpTo(t *testing.T, first string) fs.FS {
	t.Helper()
	files, err := fs.Glob(paymentsdb.Migrations(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	older := fstest.MapFS{}
	for _, f := range files {
		if f >= first {
			continue
		}
		b, err := fs.ReadFile(paymentsdb.Migrations(), f)
		if err != nil {
			t.Fatal(err)
		}
		older[f] = &fstest.MapFile{Data: b}
	}
	return older
}

// A ledger that holds two refunds of one charge (the simulator paid a second
// refund before 2026-12-07) cannot have the one-refund-per-charge index: the
// upgrade refuses it with a message naming the charge and the way out, and
// goes through once the later refund is deleted as the message says. Until
// 2026-12-07 the index's build failed on every start with PostgreSQL's
// "could not create unique index", saying nothing of what to do.
func TestALedgerWithAChargeRefundedTwiceIsRefusedClearly(t *testing.T) {
	ctx := context.Background()
	pool := withAChargeRefundedTwice(t, "0004")
	err := postgres.Migrate(ctx, pool, paymentsdb.Migrations())
	wantRefusal(t, err, "the upgrade over a charge refunded twice")
	// The way out docs/checkout.md gives: keep each charge's first refund.
	if _, err := pool.Exec(ctx, `DELETE FROM processor_sim_entries e WHERE kind = 'refund' AND EXISTS (SELECT 1 FROM
		processor_sim_entries f WHERE f.kind = 'refund' AND f.charge_ref = e.charge_ref AND
		(f.created_at, f.idempotency_key) < (e.created_at, e.idempotency_key))`); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool, paymentsdb.Migrations()); err != nil {
		t.Fatalf("the upgrade once the later refund is gone: %v", err)
	}
	var kept string
	if err := pool.QueryRow(ctx, `SELECT string_agg(reference, ',') FROM processor_sim_entries WHERE kind = 'refund'`).Scan(&kept); err != nil || kept != "re_sim_first" {
		t.Errorf("refunds kept: %q %v, want the first", kept, err)
	}
	var valid bool
	if err := pool.QueryRow(ctx, `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relname = 'processor_sim_entries_refund_of_charge'`).Scan(&valid); err != nil || !valid {
		t.Errorf("the one-refund-per-charge index: valid %v (%v)", valid, err)
	}
}

// A charge refunded twice after migration 0004 checked the ledger and before
// 0005 built its index (the previous version, still serving during a rolling
// upgrade, paid a second refund) fails the index's build: the error
// ExplainMigration gives says what happened and the way out, as 0004's does,
// not PostgreSQL's bare "could not create unique index". Until 2026-12-08 the
// payments functions failed to start on the bare message.
func TestAChargeRefundedTwiceDuringTheUpgradeIsExplained(t *testing.T) {
	ctx := context.Background()
	pool := withAChargeRefundedTwice(t, "0005")
	err := paymentsdb.ExplainMigration(postgres.Migrate(ctx, pool, paymentsdb.Migrations()))
	wantRefusal(t, err, "the upgrade over a charge refunded twice since 0004", "0005")
	if paymentsdb.ExplainMigration(nil) != nil {
		t.Error("ExplainMigration(nil) is not nil")
	}
}

// withAChargeRefundedTwice is a database migrated up to version upTo whose
// ledger holds charge ch_sim_twice refunded twice: re_sim_first a minute
// before re_sim_second.
func withAChargeRefundedTwice(t *testing.T, upTo string) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.Open(t, migrationsUpTo(t, upTo))
	if _, err := pool.Exec(context.Background(), `INSERT INTO processor_sim_entries
		(idempotency_key, kind, outcome, reference, charge_ref, amount, currency, created_at) VALUES
		('order', 'charge', 'captured', 'ch_sim_twice', '', 1299, 'USD', now() - interval '2 minutes'),
		('refund:order', 'refund', 'refunded', 're_sim_first', 'ch_sim_twice', 1299, 'USD', now() - interval '1 minute'),
		('dashboard', 'refund', 'refunded', 're_sim_second', 'ch_sim_twice', 1299, 'USD', now())`); err != nil {
		t.Fatal(err)
	}
	return pool
}

// wantRefusal fails the test unless err is a refusal that names the charge
// refunded twice, says what happened and the way out docs/checkout.md gives,
// and contains each of also.
func wantRefusal(t *testing.T, err error, what string, also ...string) {
	t.Helper()
	for _, want := range append(also, "ch_sim_twice", "refunded more than once", "keep each charge's first refund", "docs/checkout.md") {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want a refusal saying %q", what, err, want)
		}
	}
}
