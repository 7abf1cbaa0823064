package inventorydb_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres"
)

// The prune deletes the reservations that ended (released, expired,
// restocked, void) past the retention, with their lines, and nothing else:
// not a held hold, not a committed one (its order may be cancelled later,
// and that cancel must still restock), not an ended one younger than the
// retention.
func TestPruneDeletesOnlyEndedReservationsPastTheRetention(t *testing.T) {
	ctx := context.Background()
	s, pool := openStore(t)
	lines := stockedLines(t, s, 1)
	reserve := func() uuid.UUID {
		t.Helper()
		id := newID()
		if _, err := s.Reserve(ctx, holdReq(t, id, 0, lines...)); err != nil {
			t.Fatal(err)
		}
		return id
	}
	must := func(_ inventory.Hold, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// expired first: Expire gives back every hold past the time it is asked.
	expired := reserve()
	if n, err := s.Expire(ctx, time.Now().Add(2*time.Hour), 0); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	held, committed, released, restocked, young, void := reserve(), reserve(), reserve(), reserve(), reserve(), newID()
	must(s.Commit(ctx, committed))
	must(s.Release(ctx, released))
	must(s.Commit(ctx, restocked))
	must(s.Release(ctx, restocked))
	must(s.Release(ctx, young))
	must(s.Release(ctx, void))
	if _, err := pool.Exec(ctx, `UPDATE reservations SET updated_at = now() - interval '31 days' WHERE order_id <> $1`, young); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(ctx, inventorydb.EndedRetention, 0)
	if err != nil || n != 4 {
		t.Errorf("pruned %d, %v; want 4 (expired, released, restocked, void)", n, err)
	}
	got := map[uuid.UUID]string{}
	rows, _ := pool.Query(ctx, `SELECT order_id, status FROM reservations`)
	var id uuid.UUID
	var status string
	if _, err := pgx.ForEachRow(rows, []any{&id, &status}, func() error { got[id] = status; return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[uuid.UUID]string{held: "held", committed: "committed", young: "released"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reservations left (-want +got):\n%s", diff)
	}
	var orphans int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM reservation_lines WHERE order_id = ANY($1)`,
		[]uuid.UUID{expired, released, restocked}).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d lines of pruned reservations left (%v)", orphans, err)
	}
	// The committed order, cancelled after the prune, is still restocked.
	if h, err := s.Release(ctx, committed); err != nil || h.Status != inventory.StatusRestocked {
		t.Errorf("release of the old committed order: %v %v, want restocked", h.Status, err)
	}
}

// One Prune deletes at most maxBatches batches of postgres.DeleteBatch,
// oldest first; the next goes on.
func TestPruneIsBoundedByItsBatches(t *testing.T) {
	ctx := context.Background()
	s, pool := openStore(t)
	if _, err := pool.Exec(ctx, `INSERT INTO reservations (order_id, status, expires_at, updated_at)
		SELECT gen_random_uuid(), 'void', now(), now() - interval '31 days' - make_interval(secs => i)
		FROM generate_series(1, $1) AS i`, postgres.DeleteBatch+1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(ctx, inventorydb.EndedRetention, 1); err != nil || n != postgres.DeleteBatch {
		t.Fatalf("first prune: %d %v, want %d", n, err, postgres.DeleteBatch)
	}
	// The one left is the youngest: oldest first.
	var left time.Duration
	if err := pool.QueryRow(ctx, `SELECT extract(epoch FROM now() - updated_at)::bigint * 1000000000 FROM reservations`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left > 31*24*time.Hour+2*time.Second {
		t.Errorf("the one left is %s old: not the youngest", left)
	}
	if n, err := s.Prune(ctx, inventorydb.EndedRetention, 0); err != nil || n != 1 {
		t.Errorf("second prune: %d %v, want 1", n, err)
	}
}
