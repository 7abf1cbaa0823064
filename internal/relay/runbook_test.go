package relay

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopfaas/shop/internal/postgres"
)

// runbookStuckRowQuery is the stuck-row query of docs/runbooks/outbox-lag.md
// (its section "A stuck row"), as an operator pastes it.
func runbookStuckRowQuery(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/runbooks/outbox-lag.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "**A stuck row.** `")
	query, _, closed := strings.Cut(rest, "`")
	if !ok || !closed || !strings.HasPrefix(query, "SELECT ") {
		t.Fatal("docs/runbooks/outbox-lag.md: no `SELECT …` query after **A stuck row.**")
	}
	return query
}

// The runbook's stuck-row query lists the pending rows in the order the
// relay publishes them, so its first row is the one holding the others up:
// a row restored from an older cluster first (its transaction id above the
// snapshot's xmax), then by transaction id, then seq. Until 2026-12-08 it
// sorted by seq alone, and named as stuck a row committed after one that
// an older transaction wrote later.
func TestTheRunbooksStuckRowQueryListsRowsInPublishingOrder(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()

	// older takes its transaction id first and writes its row last: a
	// higher seq, a lower transaction id.
	older, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = older.Rollback(ctx) }()
	if _, err := older.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	var newer, earlier, restored string
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		newer = insertEvent(t, ctx, tx, "newer transaction, lower seq")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	earlier = insertEvent(t, ctx, older, "older transaction, higher seq")
	if err := older.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		restored = insertEvent(t, ctx, tx, "restored")
		// As pg_restore writes it: the old cluster's id, 50 million ahead.
		_, err := tx.Exec(ctx, `UPDATE outbox SET transaction_id = (pg_current_xact_id()::text::bigint + 50000000)::text::xid8
			WHERE id = $1`, restored)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	rows, err := pool.Query(ctx, runbookStuckRowQuery(t))
	if err != nil {
		t.Fatalf("the runbook's query: %v", err)
	}
	listed, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		m, err := pgx.RowToMap(row)
		if err != nil {
			return "", err
		}
		id, ok := m["id"].([16]byte)
		if !ok {
			t.Fatalf("the runbook's query gives id as %T, want a uuid", m["id"])
		}
		return uuid.UUID(id).String(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{restored, earlier, newer}, listed); diff != "" {
		t.Errorf("the runbook's query lists (-want +got):\n%s", diff)
	}

	// The order the relay publishes them in.
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names,
		BatchWait: NoBatchWait, PollInterval: 200 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	var published []string
	for _, d := range receive(t, deliveries, 3, 40*time.Second) {
		published = append(published, d.MessageId)
	}
	if diff := cmp.Diff(published, listed); diff != "" {
		t.Errorf("the runbook's query lists the rows in another order than the relay publishes them (-published +listed):\n%s", diff)
	}
}
