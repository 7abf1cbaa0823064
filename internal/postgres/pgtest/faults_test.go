package pgtest_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// A planned fault breaks the round trip it picks, and only that one: after
// the commit (the row is written, the client gets an error), or before the
// statement reaches the server (nothing is written, the same error); a
// server down refuses new connections until it is up again.
func TestFaultsBreakWhereTheyArePlanned(t *testing.T) {
	pool := pgtest.Open(t, fstest.MapFS{"0001_t.sql": {Data: []byte(`CREATE TABLE t (id int PRIMARY KEY)`)}})
	faulty, f := pgtest.WithFaults(t, pool)
	ctx := context.Background()
	count := func(id int) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM t WHERE id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert := `INSERT INTO t VALUES ($1)`
	if _, err := faulty.Exec(ctx, insert, 1); err != nil { // warm: the statement is cached
		t.Fatal(err)
	}
	for i, ft := range []pgtest.Fault{{Marker: "INSERT INTO t", Committed: true}, {Marker: "INSERT INTO t"}} {
		id := 2 + i
		f.Arm(ft)
		if _, err := faulty.Exec(ctx, insert, id); err == nil {
			t.Fatalf("%+v: the write's answer came through", ft)
		}
		if want := map[bool]int{true: 1, false: 0}[ft.Committed]; count(id) != want {
			t.Fatalf("%+v: %d rows written, want %d", ft, count(id), want)
		}
		if _, err := faulty.Exec(ctx, insert, 10+id); err != nil || count(10+id) != 1 {
			t.Fatalf("%+v: the next write: %v", ft, err)
		}
	}
	if f.Fired() != 2 {
		t.Fatalf("%d faults fired, want 2", f.Fired())
	}
	f.Arm(pgtest.Fault{Marker: "INSERT INTO t", Committed: true, Down: true})
	if _, err := faulty.Exec(ctx, insert, 20); err == nil || count(20) != 1 {
		t.Fatalf("the write before the server went down: %v, %d rows", err, count(20))
	}
	if _, err := faulty.Exec(ctx, `SELECT 1`); err == nil {
		t.Fatal("a query reached a server that is down")
	}
	f.SetDown(false)
	if _, err := faulty.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatalf("the server is up again: %v", err)
	}
}
