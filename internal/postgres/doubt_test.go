package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// ownRole returns a pool over a fresh database with a table keyed by k,
// connected as a new login role that is neither a superuser nor a member of
// pg_signal_backend (as the shop's `shop` role in production), and a pool
// connected as the test server's user. The role's pool sends no cancel
// request (pgtest.WithoutCancels), so a statement its caller gave up on runs on.
func ownRole(t *testing.T) (role, admin *pgxpool.Pool) {
	t.Helper()
	admin = pgtest.Open(t, fstest.MapFS{"0001_keys.sql": {Data: []byte(`CREATE TABLE keys (k int PRIMARY KEY)`)}})
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name, password := "test_role_"+hex.EncodeToString(b), hex.EncodeToString(b)
	ctx := context.Background()
	if _, err := admin.Exec(ctx, `CREATE ROLE `+name+` LOGIN PASSWORD '`+password+`'`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `GRANT ALL ON TABLE keys TO `+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The database (and the role's connections to it) is dropped after
		// this runs: end the role's connections first, then drop it.
		_, _ = admin.Exec(context.Background(), `SELECT pg_terminate_backend(pid, 2000) FROM pg_stat_activity WHERE usename = $1`, name)
		_, _ = admin.Exec(context.Background(), `REVOKE ALL ON TABLE keys FROM `+name)
		_, _ = admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+name)
	})
	url := admin.Config().ConnConfig.ConnString()
	cc := admin.Config().ConnConfig
	url = strings.Replace(url, "://"+cc.User+"@", "://"+name+"@", 1)
	var err error
	role, err = postgres.Open(ctx, postgres.Config{URL: url, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(role.Close)
	role, _ = pgtest.WithoutCancels(t, role)
	// A connection opened now, so a test's short deadline cuts its write,
	// not the dial.
	if err := role.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	return role, admin
}

// A write whose deadline passes while it waits behind another transaction's
// lock goes on in the server after the client gave up: when that
// transaction rolls back, it commits. A read in between finds nothing, and
// the writer would conclude, wrongly, that nothing was written. Settle stops
// the write's backend first, so the read is conclusive; a role of its own
// may do that without privileges.
func TestSettleStopsAWriteStillRunningAfterItsDeadline(t *testing.T) {
	ctx := context.Background()
	pool, admin := ownRole(t)
	twin := holdKey(t, admin)
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO keys VALUES (1)`)
	b.Queue(`INSERT INTO keys VALUES (2)`)
	werr := postgres.SendBatch(wctx, pool, b)
	cancel()
	var d *postgres.Doubt
	if !errors.As(werr, &d) {
		t.Fatalf("the write ended with %v, want a *postgres.Doubt", werr)
	}
	if waiting(t, admin) != 1 {
		t.Fatal("the write's backend is not waiting behind the lock: the test proves nothing")
	}
	if err := postgres.Settle(ctx, pool, werr); err != nil {
		t.Fatalf("settle: %v", err)
	}
	if err := twin.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := committed(t, admin); n != 0 {
		t.Fatalf("%d rows committed after the write was settled as not written, want 0", n)
	}
	// A settled doubt, or none, settles at once.
	if err := postgres.Settle(ctx, pool, werr); err != nil {
		t.Fatalf("settle again: %v", err)
	}
	if err := postgres.Settle(ctx, pool, errors.New("no doubt")); err != nil {
		t.Fatalf("settle an error without doubt: %v", err)
	}
}

// ExecTx's COMMIT runs on a Detached context, which FinishBy bounds: cut
// there while its batch waits behind a lock, the transaction is in doubt,
// and settled it has not committed.
func TestAnExecTxCutAtItsFinishTimeIsInDoubtUntilSettled(t *testing.T) {
	ctx := context.Background()
	pool, admin := ownRole(t)
	other := holdKey(t, admin)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO keys VALUES (2)`)
	b.Queue(`INSERT INTO keys VALUES (1)`)
	start := time.Now()
	werr := postgres.ExecTx(postgres.FinishBy(ctx, start.Add(300*time.Millisecond)), pool, b)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("ExecTx took %s: FinishBy did not bound its COMMIT", took)
	}
	var d *postgres.Doubt
	if !errors.As(werr, &d) {
		t.Fatalf("ExecTx ended with %v, want a *postgres.Doubt", werr)
	}
	if err := postgres.Settle(ctx, pool, werr); err != nil {
		t.Fatalf("settle: %v", err)
	}
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := committed(t, admin); n != 0 {
		t.Fatalf("%d rows committed after the transaction was settled, want 0", n)
	}
}

// An error PostgreSQL answered leaves no doubt: the batch's transaction
// rolled back.
func TestAnAnsweredErrorIsNoDoubt(t *testing.T) {
	pool, _ := ownRole(t)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO keys VALUES (1)`)
	b.Queue(`INSERT INTO keys VALUES (1)`)
	err := postgres.SendBatch(context.Background(), pool, b)
	var d *postgres.Doubt
	if err == nil || errors.As(err, &d) || !postgres.IsUniqueViolation(err, "keys_pkey") {
		t.Fatalf("got %v, want the unique violation as answered", err)
	}
}

// A FATAL on a connection pgx closed may have come after the COMMIT (the
// server shutting down while the commit waited for a replica): a doubt,
// also when the server's lc_messages translates its severity, which only
// SeverityUnlocalized then names. An ERROR rolled the transaction back.
func TestATranslatedFatalIsADoubt(t *testing.T) {
	pool, _ := ownRole(t)
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := conn.Hijack().PgConn()
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		severity, unlocalized string
		doubt                 bool
	}{
		{"FATAL", "FATAL", true},
		{"ВАЖНО", "FATAL", true},
		{"PANIK", "PANIC", true},
		{"FATAL", "", true}, // a server before 9.6 sends no unlocalized severity
		{"ОШИБКА", "ERROR", false},
		{"ERROR", "", false},
	} {
		err := postgres.DoubtOf(c, &pgconn.PgError{Severity: tt.severity, SeverityUnlocalized: tt.unlocalized, Code: "57P01"})
		var d *postgres.Doubt
		if errors.As(err, &d) != tt.doubt {
			t.Errorf("severity %q (unlocalized %q) on a closed connection: %v, want a doubt %v", tt.severity, tt.unlocalized, err, tt.doubt)
		}
	}
}

// Behind a pooler (PgBouncer answers each client with a process id of its
// own) the write's server process cannot be found: Settle must say it does
// not know, never that the write is settled, as it would find no process
// with the id the write's connection reported.
func TestSettleBehindAPoolerFailsClosed(t *testing.T) {
	ctx := context.Background()
	direct, admin := ownRole(t)
	pool := pgtest.BehindPooler(t, direct)
	if err := pool.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	settleFailsClosed(t, admin, pool)
}

// settleFailsClosed holds key 1 on admin, leaves a write of it waiting
// behind the lock on pool (its answer lost at a 300 ms deadline) and wants
// Settle to refuse, naming the pooler: the write's process cannot be found
// behind one, and it can still commit.
func settleFailsClosed(t *testing.T, admin, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	holdKey(t, admin)
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO keys VALUES (1)`)
	werr := postgres.SendBatch(wctx, pool, b)
	cancel()
	var d *postgres.Doubt
	if !errors.As(werr, &d) || waiting(t, admin) != 1 {
		t.Fatalf("the write ended with %v and is not waiting behind the lock: the test proves nothing", werr)
	}
	if err := postgres.Settle(ctx, pool, werr); err == nil || !strings.Contains(err.Error(), "pooler") {
		t.Fatalf("Settle behind a pooler: %v, want the pooler named (the write's process cannot be found, and it can still commit)", err)
	}
}

// holdKey begins a transaction on admin that inserts key 1 and keeps it
// open (rolled back when the test ends): a write of key 1 waits behind it.
func holdKey(t *testing.T, admin *pgxpool.Pool) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `INSERT INTO keys VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	return tx
}

// committed gives a server process still waiting for a lock the time to
// take it and commit (up to 2 s), and counts the rows of keys.
func committed(t *testing.T, admin *pgxpool.Pool) int {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); waiting(t, admin) > 0 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	var n int
	if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// An error a batch's callback raised after every answer was read leaves no
// doubt either: the connection stayed open, and the transaction's end is
// known (here it committed). A *Doubt there would have Settle end a live
// connection of the pool.
func TestAnErrorAfterEveryAnswerIsNoDoubt(t *testing.T) {
	pool, admin := ownRole(t)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO keys VALUES (1)`).Exec(func(pgconn.CommandTag) error { return errors.New("the caller's own") })
	err := postgres.ExecTx(context.Background(), pool, b)
	var d *postgres.Doubt
	if err == nil || errors.As(err, &d) {
		t.Fatalf("got %v, want the callback's error, no doubt", err)
	}
	if n := committed(t, admin); n != 1 {
		t.Fatalf("%d rows, want 1 (the batch committed)", n)
	}
}

// waiting counts the backends of the test's database waiting for a lock.
func waiting(t *testing.T, admin *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A write whose COMMIT went through and whose answer was lost with its
// connection (reset by the peer, as after a network failure) is in doubt,
// whichever way it commits; settled, the read finds it committed. pgx reports
// a read that fails under a simple query (Tx's COMMIT) as "conn closed", the
// error it also gives a call on a connection closed before it, which says it
// is safe to retry: it is not, the COMMIT had gone out.
func TestACommitWhoseAnswerIsLostIsADoubt(t *testing.T) {
	for name, write := range map[string]func(context.Context, *pgxpool.Pool) error{
		"Tx": func(ctx context.Context, pool *pgxpool.Pool) error {
			return postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO keys VALUES (1)`)
				return err
			})
		},
		"BatchTx": func(ctx context.Context, pool *pgxpool.Pool) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO keys VALUES (1)`)
			tx, br := postgres.BeginBatch(ctx, pool, b)
			defer tx.Rollback(ctx)
			if err := br.Close(); err != nil {
				return err
			}
			return tx.Commit(ctx, nil)
		},
		"ExecTx": func(ctx context.Context, pool *pgxpool.Pool) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO keys VALUES (1)`)
			return postgres.ExecTx(ctx, pool, b)
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			admin := pgtest.Open(t, fstest.MapFS{"0001_keys.sql": {Data: []byte(`CREATE TABLE keys (k int PRIMARY KEY)`)}})
			pool, faults := pgtest.WithFaults(t, admin)
			faults.Arm(pgtest.Fault{Marker: "commit", Committed: true})
			werr := write(ctx, pool)
			if faults.Fired() != 1 {
				t.Fatalf("the connection did not break at the COMMIT (err %v): the test proves nothing", werr)
			}
			var d *postgres.Doubt
			if !errors.As(werr, &d) {
				t.Fatalf("a COMMIT that went out, its answer lost: %v, want a *postgres.Doubt", werr)
			}
			if err := postgres.Settle(ctx, pool, werr); err != nil {
				t.Fatalf("settle: %v", err)
			}
			if n := committed(t, admin); n != 1 {
				t.Fatalf("%d rows committed, want the 1 the write committed", n)
			}
		})
	}
}
