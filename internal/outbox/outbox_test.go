package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestAppendVisibleOnlyAfterCommit(t *testing.T) {
	pool := pgtest.Open(t, fstest.MapFS{"0001_outbox.sql": {Data: []byte(outbox.Schema)}})
	ctx := context.Background()
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN "+outbox.Channel); err != nil {
		t.Fatal(err)
	}

	var id string
	var xid uint64
	err = postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		if err := outbox.Publish(ctx, tx, "orders", events.OrderPlaced, "order-1", map[string]string{"order_id": "order-1"}); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT id::text, pg_current_xact_id()::text::bigint FROM outbox`).Scan(&id, &xid); err != nil {
			return err
		}
		if n := count(); n != 0 {
			t.Errorf("%d outbox rows visible outside the transaction before commit", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d outbox rows after commit, want 1", n)
	}
	var typ, subject, envType string
	var rowXid uint64
	err = pool.QueryRow(ctx, `SELECT type, subject, envelope->>'type', transaction_id::text::bigint FROM outbox WHERE id = $1`, id).
		Scan(&typ, &subject, &envType, &rowXid)
	if err != nil {
		t.Fatal(err)
	}
	if typ != events.OrderPlaced || subject != "order-1" || envType != events.OrderPlaced || rowXid != xid {
		t.Errorf("row: type %q subject %q envelope type %q transaction_id %d (writer's %d)", typ, subject, envType, rowXid, xid)
	}
	nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n, err := listener.Conn().WaitForNotification(nctx); err != nil || n.Channel != outbox.Channel {
		t.Errorf("no %s notification after commit: %v", outbox.Channel, err)
	}

	// A rolled-back transaction leaves nothing.
	_ = postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		if err := outbox.Publish(ctx, tx, "orders", events.OrderCancelled, "order-1", nil); err != nil {
			return err
		}
		return context.Canceled
	})
	if n := count(); n != 1 {
		t.Errorf("%d rows after a rollback, want 1", n)
	}
}

// QueueAll appends every event in the order given, with one notification,
// in one statement, in both of its shapes: Queue's single-row INSERT for one event, the unnest
// of arrays for several.
func TestQueueAllAppendsInOrderWithOneNotification(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) { testQueueAll(t, n) })
	}
}

func testQueueAll(t *testing.T, n int) {
	pool := pgtest.Open(t, fstest.MapFS{"0001_outbox.sql": {Data: []byte(outbox.Schema)}})
	ctx := context.Background()
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN "+outbox.Channel); err != nil {
		t.Fatal(err)
	}
	var want []string
	err = postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		var evs []events.Envelope
		for i := range n {
			ev, err := events.New(ctx, "inventory", events.StockChanged, fmt.Sprintf("product-%d", i), map[string]int{"n": i})
			if err != nil {
				return err
			}
			evs = append(evs, ev)
			want = append(want, ev.ID+" product-"+strconv.Itoa(i))
		}
		outbox.QueueAll(b, evs...)
		outbox.QueueAll(b) // nothing
		if len(b.QueuedQueries) != 1 {
			// An error, not t.Fatalf: the transaction must end (a test
			// stopped inside it holds its connection, and the pool's
			// cleanup waits for it).
			return fmt.Errorf("%d statements queued, want one: the INSERT and its NOTIFY (two statements before)", len(b.QueuedQueries))
		}
		if unnest := strings.Contains(b.QueuedQueries[0].SQL, "unnest"); unnest != (n > 1) {
			t.Errorf("%d events: INSERT %q, want the unnest shape only for several", n, b.QueuedQueries[0].SQL)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT id::text || ' ' || subject FROM outbox
		WHERE envelope->>'id' = id::text AND type = envelope->>'type' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("outbox rows %q, want %q", got, want)
	}
	nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := listener.Conn().WaitForNotification(nctx); err != nil {
		t.Fatalf("no notification: %v", err)
	}
	nctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if n, err := listener.Conn().WaitForNotification(nctx); err == nil {
		t.Errorf("a second notification %+v for one transaction", n)
	}
}
