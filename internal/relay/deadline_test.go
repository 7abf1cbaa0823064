package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/tcpproxy"
)

const observedMetric = "shop_outbox_last_observed_timestamp_seconds"

// relayRole creates a login role of the test's own that may read, mark and
// prune the outbox of pool's database, as shop_relay may, and read and
// delete the rows of tables, and returns the URL and password the relay logs
// in with and the role's name. The role is dropped when the test ends, after
// the relay has stopped.
func relayRole(t *testing.T, pool *pgxpool.Pool, tables ...string) (url, password, name string) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name, password = "test_relay_"+hex.EncodeToString(b), hex.EncodeToString(b)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE ROLE `+name+` LOGIN PASSWORD '`+password+`'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = pool.Exec(ctx, `SELECT pg_terminate_backend(pid, 2000) FROM pg_stat_activity WHERE usename = $1`, name)
		for _, table := range append(tables, "outbox") {
			_, _ = pool.Exec(ctx, `REVOKE ALL ON TABLE `+table+` FROM `+name)
		}
		_, _ = pool.Exec(ctx, `DROP ROLE IF EXISTS `+name)
	})
	grants := []string{`GRANT SELECT, UPDATE, DELETE ON TABLE outbox TO ` + name}
	for _, table := range tables {
		grants = append(grants, `GRANT SELECT, DELETE ON TABLE `+table+` TO `+name)
	}
	for _, sql := range grants {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	cc := pool.Config().ConnConfig
	return strings.Replace(cc.ConnString(), "://"+cc.User+"@", "://"+name+"@", 1), password, name
}

// databaseErrors is the relay's count of database errors on its one
// database.
func databaseErrors(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "shop_outbox_relay_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "side" && l.GetValue() == "database" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// waitFor polls ok every 20 ms until it holds, and fails the test naming
// what did not happen when it does not within d.
func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

// TestTheLagGoesStaleWhileTheRelayCannotUseItsDatabase: while the relay
// cannot use a database (here its role loses LOGIN and its session is
// ended, as after an operator's cut or a password change), the lag gauges
// keep their last value although a row waits, and the time of their last
// measurement, shop_outbox_last_observed_timestamp_seconds, stops: what
// OutboxLagHigh reads. Once the role may log in again, the row goes out and
// the time moves on.
func TestTheLagGoesStaleWhileTheRelayCannotUseItsDatabase(t *testing.T) {
	names, deliveries := capture(t)
	pool, _ := openOutbox(t)
	url, password, role := relayRole(t, pool)
	ctx := context.Background()
	reg, _ := startRelay(t, ctx, Config{Databases: []Database{{Name: "orders", URL: url, Password: password}},
		BrokerURL: rabbitURL, Names: names}, nil)
	start := gauge(t, reg, observedMetric)
	if start < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("%s = %v at the relay's start, want about now", observedMetric, start)
	}
	publishedOnce(t, ctx, pool, deliveries, "before")
	waitFor(t, 5*time.Second, "the lag measured on a working session", func() bool {
		return gauge(t, reg, observedMetric) > start
	})

	if _, err := pool.Exec(ctx, `ALTER ROLE `+role+` NOLOGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = $1`, role); err != nil {
		t.Fatal(err)
	}
	commitEvent(t, ctx, pool, "while refused")
	errs := databaseErrors(t, reg)
	waitFor(t, 10*time.Second, "a database error counted once the relay's session ended", func() bool {
		return databaseErrors(t, reg) > errs
	})
	last := gauge(t, reg, observedMetric)
	time.Sleep(2 * time.Second) // ten polls, and as many tries to log in again
	if now := gauge(t, reg, observedMetric); now != last {
		t.Errorf("%s moved from %v to %v while the relay could not log in", observedMetric, last, now)
	}
	if n := unpublished(t, pool); n != 1 {
		t.Errorf("%d rows pending while the relay could not log in, want 1", n)
	}
	if n := databaseErrors(t, reg); n < errs+2 {
		t.Errorf("%v database errors counted in 2 s of refused logins, want every try", n-errs)
	}

	if _, err := pool.Exec(ctx, `ALTER ROLE `+role+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	receive(t, deliveries, 1, 10*time.Second)
	allMarked(t, pool)
	waitFor(t, 5*time.Second, "the lag measured again once the role may log in", func() bool {
		return gauge(t, reg, observedMetric) > last
	})
}

// TestAStuckStatementIsAbandonedAtItsDeadline: a statement of the relay
// that never ends — its mark waiting on a row lock another transaction
// holds, its read sent on a connection gone half-open — is given up at
// Config.StatementTimeout, and the relay starts a new session: the worker
// and its lag gauges do not stop there for good.
func TestAStuckStatementIsAbandonedAtItsDeadline(t *testing.T) {
	t.Run("a row lock", func(t *testing.T) {
		names, deliveries := capture(t)
		pool, url := openOutbox(t)
		ctx := context.Background()
		commitEvent(t, ctx, pool, "locked")
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, `SELECT 1 FROM outbox FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		reg, _ := startRelay(t, ctx, Config{Databases: []Database{{Name: "orders", URL: url}},
			BrokerURL: rabbitURL, Names: names, StatementTimeout: time.Second}, nil)
		receive(t, deliveries, 1, 10*time.Second) // published: its mark now waits for the lock
		waitFor(t, 10*time.Second, "the mark waiting on the lock given up (a database error counted)", func() bool {
			return databaseErrors(t, reg) >= 1
		})
		// Nor does the server keep it: no statement waits on the lock much
		// longer than the deadline, however many sessions tried.
		time.Sleep(3 * time.Second)
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND now() - query_start > interval '2500 milliseconds'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting != 0 {
			t.Errorf("%d statements still wait on the lock in the server past their deadline", waiting)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		allMarked(t, pool)
	})

	t.Run("a half-open connection", func(t *testing.T) {
		names, deliveries := capture(t)
		pool, url := openOutbox(t)
		ctx := context.Background()
		cc, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		server := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
		proxy := tcpproxy.New(t, server)
		reg, _ := startRelay(t, ctx, Config{Databases: []Database{{Name: "orders", URL: strings.Replace(url, server, proxy.Addr(), 1)}},
			BrokerURL: rabbitURL, Names: names, StatementTimeout: time.Second}, nil)
		publishedOnce(t, ctx, pool, deliveries, "before")
		proxy.Silence() // the relay's session hears nothing more; a new one gets through
		commitEvent(t, ctx, pool, "after")
		receive(t, deliveries, 1, 10*time.Second)
		if n := databaseErrors(t, reg); n < 1 {
			t.Errorf("%v database errors counted, want the silent session's", n)
		}
	})
}

// readable waits until no pending row of pool's outbox is held back from the
// relay's read (drain) by an older transaction of another database of the
// cluster, and returns a time no later than that: from then on only the
// relay's own session stands between a row and its publication. Under make
// test, or beside other work on the same server, another package's
// transaction may run for seconds, and a test that timed the relay from the
// commit failed with "received 0 messages within 5s" on a loaded machine.
// The relay's own transactions (its database is the test's own) are not
// excused: a cleanup that ran again would hold the rows back (its delete
// locks the row before the trigger sleeps) and show in the time.
func readable(t *testing.T, ctx context.Context, pool *pgxpool.Pool) time.Time {
	t.Helper()
	const within = 40 * time.Second
	var heldSince time.Time
	for deadline := time.Now().Add(within); ; time.Sleep(5 * time.Millisecond) {
		// Taken before the query: the row was readable at its snapshot.
		at := time.Now()
		var held bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox o, pg_stat_activity a
			WHERE o.published_at IS NULL AND a.backend_xid IS NOT NULL
				AND a.datname IS DISTINCT FROM current_database()
				AND age(a.backend_xid) > age(o.transaction_id::xid))`).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if !held {
			if !heldSince.IsZero() {
				t.Logf("a pending row held back by another database's transaction for %s at least", at.Sub(heldSince).Round(time.Millisecond))
			}
			return at
		}
		if heldSince.IsZero() {
			heldSince = at
		}
		if time.Now().After(deadline) {
			t.Fatalf("a pending row held back for %s by an older transaction of another database", within)
		}
	}
}

// TestACleanupPastItsDeadlineDoesNotStopPublishing: a cleanup whose
// statement runs past Config.StatementTimeout (here a trigger slows its
// delete; in production, a walk over a large backlog of old rows) is given up with a warning and one database error
// counted, and tried again only after CleanupInterval: the session goes on
// publishing without a stall. A timed-out cleanup used to end the session
// without recording the try, so every new session ran it again right after
// its drain: publishing stalled a deadline per cycle and the errors grew
// for ever.
func TestACleanupPastItsDeadlineDoesNotStopPublishing(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (id, type, source, envelope, published_at)
		VALUES (gen_random_uuid(), 'old', 'test', '{}', now() - interval '2 hours')`); err != nil {
		t.Fatal(err)
	}
	// Old processed-event records: their prune, the next step, still runs,
	// and stops at its cap (inbox.PruneBatches batches), which brings the
	// next cleanup forward only when no step was cut short.
	const oldRecords = inbox.PruneBatches*postgres.DeleteBatch + 7
	for _, sql := range []string{inbox.Schema, inbox.PruneIndex, `INSERT INTO processed_events (event_id, consumer, processed_at)
		SELECT gen_random_uuid(), 'test', now() - interval '2 hours' FROM generate_series(1, ` + strconv.Itoa(oldRecords) + `)`} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	// Each row's delete takes a second, past the deadline. (A transaction
	// holding the row's lock would do too, but the relay holds back new
	// rows while a transaction older than them is open.)
	for _, sql := range []string{
		`CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN PERFORM pg_sleep(5); RETURN OLD; END $$`,
		`CREATE TRIGGER slow_delete BEFORE DELETE ON outbox FOR EACH ROW EXECUTE FUNCTION slow_delete()`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	reg, _ := startRelay(t, ctx, Config{Databases: []Database{{Name: "orders", URL: url}},
		BrokerURL: rabbitURL, Names: names, StatementTimeout: 2 * time.Second, Retention: time.Hour,
		InboxRetention: time.Hour}, nil)
	waitFor(t, 10*time.Second, "the cleanup given up at its deadline (a database error counted)", func() bool {
		return databaseErrors(t, reg) >= 1
	})
	cutAt := time.Now()
	// Every event committed now goes out promptly, and no cleanup runs
	// again: each one would time out. Promptly means once no transaction
	// of another database holds it back: one older than the event's, still
	// running (another package's test), holds it for as long as it runs,
	// which says nothing of the relay.
	for i := range 8 {
		commitEvent(t, ctx, pool, "after "+strconv.Itoa(i))
		start := readable(t, ctx, pool)
		receive(t, deliveries, 1, 5*time.Second)
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("event %d published %s after the relay could read it, want well under the 2 s deadline", i, d.Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Past the catch-up a capped cleanup would bring: a cut one brings
	// none. Until 2026-12-06 (460b9ec to the day's fix) it did, and the step
	// that times out stalled publishing every cleanupCatchUp.
	time.Sleep(time.Until(cutAt.Add(cleanupCatchUp + 3*time.Second)))
	if n := databaseErrors(t, reg); n != 1 {
		t.Errorf("%v database errors counted while a cleanup could not finish, want 1 (one try per CleanupInterval)", n)
	}
	var old int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = 'old'`).Scan(&old); err != nil {
		t.Fatal(err)
	}
	if old != 1 {
		t.Errorf("%d old rows left, want the one whose delete timed out", old)
	}
	if left := records(t, pool); left != 7 {
		t.Errorf("%d old processed-event records left, want the 7 past the cap: the inbox's prune did not run after the outbox's was cut short, or ran twice", left)
	}
}
