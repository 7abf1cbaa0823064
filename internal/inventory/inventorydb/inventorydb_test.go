package inventorydb_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func openStore(t *testing.T) (*inventorydb.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.Open(t, inventorydb.Migrations())
	return inventorydb.New(pool), pool
}

func TestMigrationIncludesOutboxSchemaVerbatim(t *testing.T) {
	b, err := inventorydb.ReadInitMigration()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b, outbox.Schema) {
		t.Fatal("0001_init.sql must include outbox.Schema verbatim")
	}
}

func TestGetNeverStockedIsNotFound(t *testing.T) {
	s, _ := openStore(t)
	_, err := s.Get(context.Background(), uuid.Must(uuid.NewV7()))
	if !fault.Is(err, fault.NotFound, "not_found") {
		t.Fatalf("Get of unstocked product: err = %v, want not_found", err)
	}
}

func TestSetOnHandWritesStockAndEventInOneTransaction(t *testing.T) {
	s, pool := openStore(t)
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7())

	st, err := s.SetOnHand(ctx, id, 12, inventory.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if st.OnHand != 12 || st.Reserved != 0 || st.Available() != 12 {
		t.Fatalf("SetOnHand = %+v", st)
	}
	st, err = s.SetOnHand(ctx, id, 7, inventory.IfMatch(st.ETag())) // still in stock: no event
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.SetOnHand(ctx, id, 0, inventory.IfMatch(st.ETag())); err != nil { // sold out
		t.Fatal(err)
	}
	if st, err = s.SetOnHand(ctx, id, 7, inventory.IfMatch(st.ETag())); err != nil { // back in stock
		t.Fatal(err)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(inventory.ViewOf(st), inventory.ViewOf(got)); diff != "" {
		t.Fatalf("Get after SetOnHand (-set +get):\n%s", diff)
	}

	var datas []inventory.View
	rows, err := pool.Query(ctx, `SELECT type, subject, envelope FROM outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, subject string
		var env events.Envelope
		if err := rows.Scan(&typ, &subject, &env); err != nil {
			t.Fatal(err)
		}
		if typ != events.StockChanged || subject != id.String() || env.Type != events.StockChanged || env.Source != inventory.Source {
			t.Fatalf("outbox row type=%q subject=%q envelope=%+v", typ, subject, env)
		}
		var v inventory.View
		if err := json.Unmarshal(env.Data, &v); err != nil {
			t.Fatal(err)
		}
		datas = append(datas, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []inventory.View{
		{ProductID: id, OnHand: 12, Reserved: 0, Available: 12},
		{ProductID: id, OnHand: 0, Reserved: 0, Available: 0},
		{ProductID: id, OnHand: 7, Reserved: 0, Available: 7},
	}
	for i := 1; i < len(datas); i++ {
		if datas[0].Version < 1 || datas[i].Version <= datas[i-1].Version {
			t.Errorf("event versions %d then %d: each change must carry a larger version", datas[i-1].Version, datas[i].Version)
		}
	}
	if diff := cmp.Diff(want, datas, cmpopts.IgnoreFields(inventory.View{}, "Version")); diff != "" {
		t.Fatalf("stock.changed.v1 events (-want +got):\n%s", diff)
	}
}

func TestRefusedChangeWritesNoEvent(t *testing.T) {
	s, pool := openStore(t)
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7())
	if _, err := s.SetOnHand(ctx, id, 10, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	// Orders in flight hold 6 units (the checkout's reservations do this).
	if _, err := pool.Exec(ctx, `UPDATE stock SET reserved = 6 WHERE product_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	_, err := s.SetOnHand(ctx, id, 5, inventory.IfExists())
	if !fault.Is(err, fault.Conflict, "below_reserved") {
		t.Fatalf("SetOnHand below reserved: err = %v, want conflict below_reserved", err)
	}
	for _, bad := range []int{-1, inventory.MaxOnHand + 1} {
		if _, err := s.SetOnHand(ctx, id, bad, inventory.IfExists()); !fault.Is(err, fault.Invalid, "") {
			t.Fatalf("SetOnHand(%d): err = %v, want invalid", bad, err)
		}
	}
	st, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.OnHand != 10 || st.Reserved != 6 || st.Available() != 4 {
		t.Fatalf("stock after refused changes = %+v, want on_hand 10 reserved 6", st)
	}
	// Setting exactly the reserved amount is allowed.
	if _, err := s.SetOnHand(ctx, id, 6, inventory.IfExists()); err != nil {
		t.Fatalf("SetOnHand(reserved): %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("outbox rows = %d, want 2 (refused changes write none)", n)
	}
}

func TestCheckConstraintsRejectImpossibleStock(t *testing.T) {
	_, pool := openStore(t)
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7())
	if _, err := pool.Exec(ctx, `INSERT INTO stock (product_id, on_hand, reserved) VALUES ($1, 5, 2)`, id); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE stock SET on_hand = -1, reserved = 0 WHERE product_id = $1`,
		`UPDATE stock SET reserved = -1 WHERE product_id = $1`,
		`UPDATE stock SET reserved = 6 WHERE product_id = $1`,
		`UPDATE stock SET on_hand = 1 WHERE product_id = $1`,
	} {
		_, err := pool.Exec(ctx, stmt, id)
		if !postgres.IsCheckViolation(err) {
			t.Errorf("%s: err = %v, want a CHECK violation", stmt, err)
		}
	}
	_, err := pool.Exec(ctx, `INSERT INTO stock (product_id, on_hand, reserved) VALUES ($1, -3, 0)`, uuid.Must(uuid.NewV7()))
	if !postgres.IsCheckViolation(err) {
		t.Errorf("insert negative on_hand: err = %v, want a CHECK violation", err)
	}
}

// No request can make a CHECK refuse a stock move (set-stock decides under
// the row's lock, reservations are conditional, and every other move gives
// back or sells units a locked hold counts in reserved): one that does means
// the row and its holds disagree, a defect or a hand edit. It is an internal
// error (500, logged with its cause), and the hold stays as it was; until
// 2026-12-07 it was 409 stock_conflict, a refusal logged at debug level that
// no operation of the document lists.
func TestAStockRowOutOfStepWithItsHoldsIsAnInternalError(t *testing.T) {
	s, pool := openStore(t)
	ctx := context.Background()
	product := uuid.Must(uuid.NewV7())
	if _, err := s.SetOnHand(ctx, product, 5, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	for name, move := range map[string]func(uuid.UUID) (inventory.Hold, error){
		"commit":  func(order uuid.UUID) (inventory.Hold, error) { return s.Commit(ctx, order) },
		"release": func(order uuid.UUID) (inventory.Hold, error) { return s.Release(ctx, order) },
	} {
		order := uuid.Must(uuid.NewV7())
		req, err := inventory.NewHoldRequest(order, []inventory.Line{{ProductID: product, Quantity: 2}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Reserve(ctx, req); err != nil {
			t.Fatal(err)
		}
		// The row forgets the hold's 2 units: moving them takes reserved below 0.
		if _, err := pool.Exec(ctx, `UPDATE stock SET reserved = 0 WHERE product_id = $1`, product); err != nil {
			t.Fatal(err)
		}
		_, err = move(order)
		if !postgres.IsCheckViolation(err) {
			t.Fatalf("%s: err = %v, want the CHECK violation as its cause", name, err)
		}
		if kind, code := fault.KindOf(err), fault.CodeOf(err); kind != fault.Internal || code != fault.CodeInternal {
			t.Errorf("%s: %s %s (%v), want an internal error", name, kind, code, err)
		}
		if h, err := s.Hold(ctx, order); err != nil || h.Status != inventory.StatusHeld {
			t.Errorf("%s: hold %s (%v), want still held", name, h.Status, err)
		}
	}
}

func TestInitIsIdempotent(t *testing.T) {
	s, pool := openStore(t)
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7())
	created, err := s.Init(ctx, id, 40)
	if err != nil || !created {
		t.Fatalf("first Init = %v, %v; want created", created, err)
	}
	created, err = s.Init(ctx, id, 99)
	if err != nil || created {
		t.Fatalf("second Init = %v, %v; want not created", created, err)
	}
	st, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.OnHand != 40 {
		t.Fatalf("on_hand = %d, want 40 (second Init must not overwrite)", st.OnHand)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("outbox rows = %d, want 1", n)
	}
}

// Concurrent overwrites (If-Match: *) of the same product must neither fail
// nor be lost: the row lock serialises them. Half of them set 0: whatever
// order they commit in, an event is written exactly when the product goes
// out of stock or comes back, so the last event tells whether it is in stock.
func TestConcurrentSetOnHand(t *testing.T) {
	s, pool := openStore(t)
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7())
	if _, err := s.Init(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.SetOnHand(ctx, id, (i%2)*(i+1), inventory.IfExists()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent SetOnHand: %v", err)
	}
	rows, err := pool.Query(ctx, `SELECT (envelope->'data'->>'available')::int FROM outbox WHERE subject = $1 ORDER BY seq`, id.String())
	if err != nil {
		t.Fatal(err)
	}
	seen, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range seen {
		if i > 0 && (n > 0) == (seen[i-1] > 0) {
			t.Errorf("events' available units %v: two in a row say the same (in stock or not)", seen)
			break
		}
	}
	st, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if told := len(seen) > 0 && seen[len(seen)-1] > 0; told != (st.Available() > 0) {
		t.Errorf("events' available units %v, stock left at %d: the last event must tell whether it is in stock", seen, st.Available())
	}
}

// When the event cannot be written, the stock change must not commit either.
func TestStockChangeRollsBackWithoutItsEvent(t *testing.T) {
	s, pool := openStore(t)
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7())
	if _, err := s.SetOnHand(ctx, id, 10, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE outbox ADD CONSTRAINT no_more_events CHECK (seq < 0) NOT VALID`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetOnHand(ctx, id, 0, inventory.IfExists()); err == nil {
		t.Fatal("SetOnHand succeeded although its event could not be written")
	}
	if _, err := s.SetOnHand(ctx, id, 20, inventory.IfExists()); err != nil {
		t.Fatalf("SetOnHand that keeps the product in stock writes no event, so it must succeed: %v", err)
	}
	if _, err := s.Init(ctx, uuid.Must(uuid.NewV7()), 5); err == nil {
		t.Fatal("Init succeeded although its event could not be written")
	}
	st, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.OnHand != 20 {
		t.Fatalf("on_hand = %d, want 20: the sell-out committed without its event, or the change that needed none did not", st.OnHand)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stock`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Fatalf("stock rows = %d, want 1", rows)
	}
}

// An inventory database that cannot be reached is a 503 the client may
// retry (api/openapi.yaml: set-stock's and get-stock's 503 unavailable), as
// SetOnHand's and Get's comments promise, never a 500 logged as a defect:
// until 2026-12-07 SetOnHand and Init returned postgres.Tx's "begin: …"
// unwrapped, so set-stock answered 500 internal while the database was down;
// until 2026-12-07 Hold did the same.
func TestADatabaseDownIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s, pool := openStore(t)
	id := uuid.Must(uuid.NewV7())
	if _, err := s.SetOnHand(ctx, id, 3, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	calls := map[string]func() error{
		"Get":       func() error { _, err := s.Get(ctx, id); return err },
		"SetOnHand": func() error { _, err := s.SetOnHand(ctx, id, 5, inventory.IfExists()); return err },
		"SetOnHand first": func() error {
			_, err := s.SetOnHand(ctx, uuid.Must(uuid.NewV7()), 5, inventory.IfAbsent())
			return err
		},
		"Init": func() error { _, err := s.Init(ctx, uuid.Must(uuid.NewV7()), 5); return err },
		"Hold": func() error { _, err := s.Hold(ctx, uuid.Must(uuid.NewV7())); return err },
		"Reserve": func() error {
			req, err := inventory.NewHoldRequest(uuid.Must(uuid.NewV7()), []inventory.Line{{ProductID: id, Quantity: 1}}, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Reserve(ctx, req)
			return err
		},
		"Commit":          func() error { _, err := s.Commit(ctx, uuid.Must(uuid.NewV7())); return err },
		"Release":         func() error { _, err := s.Release(ctx, uuid.Must(uuid.NewV7())); return err },
		"Expire":          func() error { _, err := s.Expire(ctx, time.Time{}, 0); return err },
		"SweepCursor":     func() error { _, err := s.SweepCursor(ctx); return err },
		"SaveSweepCursor": func() error { return s.SaveSweepCursor(ctx, inventory.SettleCursor{}) },
	}
	for name, call := range calls {
		if err := call(); fault.KindOf(err) != fault.Unavailable {
			t.Errorf("%s with the database down: %v (kind %v), want fault.Unavailable", name, err, fault.KindOf(err))
		}
	}
}
