package inbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func migrations() fstest.MapFS {
	return fstest.MapFS{
		"0001_init.sql":   {Data: []byte(inbox.Schema + "\nCREATE TABLE effects (n int NOT NULL);")},
		"0002_by_age.sql": {Data: []byte(postgres.NoTransaction + "\n" + inbox.PruneIndex)},
	}
}

// Ten concurrent deliveries of one event apply its effect exactly once; a
// second consumer of the same event in the same database still gets it.
func TestClaimOnce(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	id, _ := uuid.NewV7()
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
				first, err := inbox.Claim(ctx, tx, id, "counter")
				if err != nil || !first {
					return err
				}
				firsts.Add(1)
				_, err = tx.Exec(ctx, `INSERT INTO effects VALUES (1)`)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 || firsts.Load() != 1 {
		t.Errorf("%d effects, %d first claims; want 1 and 1", n, firsts.Load())
	}
	err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, id, "mailer")
		if err == nil && !first {
			err = errors.New("another consumer's claim blocked this one")
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}

// A claim whose transaction rolls back is no claim: the redelivery applies.
func TestRolledBackClaimIsRetried(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	id, _ := uuid.NewV7()
	boom := errors.New("effect failed")
	err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := inbox.Claim(ctx, tx, id, "c"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	err = postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		first, err := inbox.Claim(ctx, tx, id, "c")
		if err == nil && !first {
			err = errors.New("rolled-back claim still counted")
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
	err = postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		_, err := inbox.Claim(ctx, tx, uuid.Nil, "c")
		return err
	})
	if err == nil {
		t.Error("nil event id accepted")
	}
}

// Prune deletes only records older than the retention, and is a no-op in a
// database without the table.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	old, fresh := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	for _, id := range []uuid.UUID{old, fresh} {
		if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error { _, err := inbox.Claim(ctx, tx, id, "c"); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE processed_events SET processed_at = now() - interval '40 days' WHERE event_id = $1`, old); err != nil {
		t.Fatal(err)
	}
	n, err := inbox.Prune(ctx, pool, 30*24*time.Hour, discard)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1 record deleted", n, err)
	}
	var left []uuid.UUID
	rows, _ := pool.Query(ctx, `SELECT event_id FROM processed_events`)
	for rows.Next() {
		var id uuid.UUID
		_ = rows.Scan(&id)
		left = append(left, id)
	}
	rows.Close()
	if len(left) != 1 || left[0] != fresh {
		t.Errorf("left %v, want only %v", left, fresh)
	}
	empty := pgtest.Open(t, fstest.MapFS{"0001_none.sql": {Data: []byte(`CREATE TABLE other (n int);`)}})
	if n, err := inbox.Prune(ctx, empty, time.Hour, discard); err != nil || n != 0 {
		t.Errorf("Prune without the table = %d, %v; want 0, nil", n, err)
	}
}

// QueueClaim in a batched transaction (postgres.BatchTx) whose effect rides in
// the claim's batch: of ten concurrent deliveries exactly one reports first
// and commits; the others roll their effect back.
func TestQueueClaimOnce(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	id, _ := uuid.NewV7()
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first bool
			b := &pgx.Batch{}
			if err := inbox.QueueClaim(b, id, "counter", &first); err != nil {
				t.Error(err)
				return
			}
			b.Queue(`INSERT INTO effects VALUES (1)`)
			tx, br := postgres.BeginBatch(ctx, pool, b)
			defer tx.Rollback(ctx)
			if err := br.Close(); err != nil {
				t.Error(err)
				return
			}
			if !first {
				return
			}
			firsts.Add(1)
			if err := tx.Commit(ctx, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 || firsts.Load() != 1 {
		t.Errorf("%d effects, %d first claims; want 1 and 1", n, firsts.Load())
	}
	var first bool
	if err := inbox.QueueClaim(&pgx.Batch{}, uuid.Nil, "c", &first); err == nil {
		t.Error("nil event id accepted")
	}
}

// Prune reads the records it deletes, not the rest of the table: the relay
// runs it every ten minutes over 30 days of records. Its plan must not depend
// on the table's statistics, which this machine's PostgreSQL (autovacuum
// off) never takes and a production server does.
func TestPruneReadsOnlyTheRecordsItDeletes(t *testing.T) {
	for _, analyzed := range []bool{false, true} {
		t.Run(fmt.Sprint("analyzed=", analyzed), func(t *testing.T) {
			ctx := context.Background()
			pool := pgtest.Open(t, migrations())
			// 600 records processed 40 days ago and 8,000 within the
			// retention, under two consumers, in no particular order of id.
			const old, fresh = 600, 8000
			if _, err := pool.Exec(ctx, `INSERT INTO processed_events (event_id, consumer, processed_at)
				SELECT gen_random_uuid(), CASE WHEN i % 2 = 0 THEN 'stats' ELSE 'index' END,
					CASE WHEN i % ($1::int + $2::int) < $1::int THEN now() - interval '40 days' ELSE now() - interval '1 day' END
				FROM generate_series(1, $1::int + $2::int) i`, old, fresh); err != nil {
				t.Fatal(err)
			}
			if analyzed {
				if _, err := pool.Exec(ctx, `ANALYZE processed_events`); err != nil {
					t.Fatal(err)
				}
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			before := pgtest.RowsRead(t, tx, "processed_events")
			n, err := inbox.Prune(ctx, tx, 30*24*time.Hour, discard)
			rowsRead := pgtest.RowsRead(t, tx, "processed_events") - before
			t.Logf("deleted %d records of %d, reading %d", n, old+fresh, rowsRead)
			if err != nil || n != old {
				t.Errorf("Prune = %d, %v; want %d records deleted", n, err, old)
			}
			rows, err := tx.Query(ctx, `SELECT processed_at < now() - interval '30 days', count(*)::int FROM processed_events GROUP BY 1`)
			if err != nil {
				t.Fatal(err)
			}
			left := map[string]int{}
			var past bool
			var count int
			if _, err := pgx.ForEachRow(rows, []any{&past, &count}, func() error {
				left[fmt.Sprint("past the retention=", past)] = count
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]int{"past the retention=false": fresh}, left); diff != "" {
				t.Errorf("records left (-want +got):\n%s", diff)
			}
			if rowsRead > old+10 {
				t.Errorf("read %d records to delete %d: Prune read the records it keeps", rowsRead, old)
			}
		})
	}
}

// While processed_events_processed_at (PruneIndex) is missing or not valid —
// a service's migration not yet applied, its concurrent build under way on a
// table holding a month of records, or one that failed and waits for the
// next start to build it again — Prune deletes nothing and reads no record:
// each of its batches would read the whole table, up to PruneBatches times a
// cleanup (as notificationsdb.Prune and catalogdb.PruneOrderSales wait for
// theirs). Until 2026-12-08 it checked only that the table existed.
func TestPruneWaitsForAValidIndex(t *testing.T) {
	ctx := context.Background()
	const old = 3000
	insert := func(t *testing.T, db postgres.Querier) {
		t.Helper()
		if _, err := db.Exec(ctx, `INSERT INTO processed_events (event_id, consumer, processed_at)
			SELECT gen_random_uuid(), 'c', now() - interval '40 days' FROM generate_series(1, $1::int)`, old); err != nil {
			t.Fatal(err)
		}
	}
	prunesNothing := func(t *testing.T, tx pgx.Tx, why string) {
		t.Helper()
		before := pgtest.RowsRead(t, tx, "processed_events")
		if n, err := inbox.Prune(ctx, tx, 30*24*time.Hour, discard); err != nil || n != 0 {
			t.Errorf("Prune %s = %d, %v; want 0, nil: nothing pruned until the index is valid", why, n, err)
		}
		if read := pgtest.RowsRead(t, tx, "processed_events") - before; read > 10 {
			t.Errorf("a prune %s read %d records; want none", why, read)
		}
	}

	t.Run("missing", func(t *testing.T) {
		pool := pgtest.Open(t, fstest.MapFS{"0001_init.sql": {Data: []byte(inbox.Schema)}})
		insert(t, pool)
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		prunesNothing(t, tx, "without the index")
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, inbox.PruneIndex); err != nil {
			t.Fatal(err)
		}
		if n, err := inbox.Prune(ctx, pool, 30*24*time.Hour, discard); err != nil || n != old {
			t.Errorf("Prune once the index is built = %d, %v; want %d", n, err, old)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		pool := pgtest.Open(t, migrations())
		insert(t, pool)
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		if _, err := tx.Exec(ctx, `UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'processed_events_processed_at'::regclass`); err != nil {
			t.Fatal(err)
		}
		prunesNothing(t, tx, "under an invalid index")
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		// Valid again (the next start's build), the old records go.
		if n, err := inbox.Prune(ctx, pool, 30*24*time.Hour, discard); err != nil || n != old {
			t.Errorf("Prune under the valid index = %d, %v; want %d", n, err, old)
		}
	})
}

// Prune deletes every record past the retention when there are more than
// one statement deletes (postgres.DeleteBatch).
func TestPruneDeletesInBatches(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	const n = 2*postgres.DeleteBatch + 7
	if _, err := pool.Exec(ctx, `INSERT INTO processed_events (event_id, consumer, processed_at)
		SELECT gen_random_uuid(), 'c', now() - interval '40 days' FROM generate_series(1, $1)`, n); err != nil {
		t.Fatal(err)
	}
	if got, err := inbox.Prune(ctx, pool, 30*24*time.Hour, discard); err != nil || got != n {
		t.Fatalf("Prune = %d, %v; want %d records deleted", got, err, n)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM processed_events`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d records left (%v), want none", left, err)
	}
}

// One Prune deletes at most PruneBatches batches: the relay prunes in the
// loop that publishes, so a backlog (after a relay outage, or a lowered
// INBOX_RETENTION) goes over several cleanups instead of holding the events
// up; the next Prune goes on where it stopped.
func TestPruneStopsAfterItsBatches(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrations())
	const capped, n = inbox.PruneBatches * postgres.DeleteBatch, inbox.PruneBatches*postgres.DeleteBatch + 7
	if _, err := pool.Exec(ctx, `INSERT INTO processed_events (event_id, consumer, processed_at)
		SELECT gen_random_uuid(), 'c', now() - interval '40 days' FROM generate_series(1, $1)`, n); err != nil {
		t.Fatal(err)
	}
	if got, err := inbox.Prune(ctx, pool, 30*24*time.Hour, discard); err != nil || got != capped {
		t.Fatalf("first Prune = %d, %v; want its %d batches' %d records deleted", got, err, inbox.PruneBatches, capped)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM processed_events`).Scan(&left); err != nil || left != n-capped {
		t.Errorf("%d records left after the first Prune (%v), want %d", left, err, n-capped)
	}
	if got, err := inbox.Prune(ctx, pool, 30*24*time.Hour, discard); err != nil || got != n-capped {
		t.Fatalf("second Prune = %d, %v; want the %d records left deleted", got, err, n-capped)
	}
}

// A consumer's recorded retention is one row per consumer, the last build's
// (an upsert); a database without the table has none recorded; a consumer
// without a name, or a retention the consumers refuse, is not recorded.
func TestRecordRetentionKeepsEachConsumersLast(t *testing.T) {
	ctx := context.Background()
	empty := pgtest.Open(t, migrations())
	if got, err := inbox.RecordedRetentions(ctx, empty); err != nil || got != nil {
		t.Errorf("RecordedRetentions without the table = %v, %v; want none", got, err)
	}
	pool := pgtest.Open(t, retentionMigrations())
	const day = 24 * time.Hour
	for _, r := range []inbox.Recorded{{"stats", 40 * day}, {"index", 30 * day}, {"stats", 60 * day}} {
		if _, err := inbox.RecordRetention(ctx, pool, r.Consumer, r.Retention); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []inbox.Recorded{{"", 30 * day}, {"stats", inbox.MaxClockSkew}} {
		if _, err := inbox.RecordRetention(ctx, pool, bad.Consumer, bad.Retention); err == nil {
			t.Errorf("RecordRetention(%q, %s) succeeded, want a refusal", bad.Consumer, bad.Retention)
		}
	}
	got, err := inbox.RecordedRetentions(ctx, pool)
	if diff := cmp.Diff([]inbox.Recorded{{"index", 30 * day}, {"stats", 60 * day}}, got); diff != "" || err != nil {
		t.Errorf("RecordedRetentions (%v; -want +got):\n%s", err, diff)
	}
}

// A consumer's window after a raise of its retention grows from the window
// it had by the time since the raise, up to the new retention: the relay
// pruned with the old one until the raise, so an event older than that grows
// no younger than the records pruned then.
func TestTheWindowGrowsFromTheRaise(t *testing.T) {
	const day = 24 * time.Hour
	raised := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		w    inbox.Window
		now  time.Time
		want time.Duration
	}{
		{"never raised", inbox.Window{Retention: 60 * day}, raised, 60 * day},
		{"at the raise", inbox.Window{Retention: 60 * day, Previous: 30 * day, RaisedAt: raised}, raised, 30 * day},
		{"10 days after", inbox.Window{Retention: 60 * day, Previous: 30 * day, RaisedAt: raised}, raised.Add(10 * day), 40 * day},
		{"a minute before the end", inbox.Window{Retention: 60 * day, Previous: 30 * day, RaisedAt: raised}, raised.Add(30*day - time.Minute), 60*day - time.Minute},
		{"at the end", inbox.Window{Retention: 60 * day, Previous: 30 * day, RaisedAt: raised}, raised.Add(30 * day), 60 * day},
		{"long after", inbox.Window{Retention: 60 * day, Previous: 30 * day, RaisedAt: raised}, raised.AddDate(1, 0, 0), 60 * day},
		{"a clock before the raise", inbox.Window{Retention: 60 * day, Previous: 30 * day, RaisedAt: raised}, raised.Add(-time.Hour), 30 * day},
		{"previous not shorter", inbox.Window{Retention: 60 * day, Previous: 90 * day, RaisedAt: raised}, raised, 60 * day},
	} {
		if got := tt.w.At(tt.now); got != tt.want {
			t.Errorf("%s: %+v.At(%s) = %s, want %s", tt.name, tt.w, tt.now, got, tt.want)
		}
	}
}

// retentionMigrations are migrations() with the consumers' retentions.
func retentionMigrations() fstest.MapFS {
	m := migrations()
	m["0003_retentions.sql"] = &fstest.MapFile{Data: []byte(inbox.RetentionSchema)}
	m["0004_raises.sql"] = &fstest.MapFile{Data: []byte(inbox.RetentionRaiseSchema)}
	m["0005_finite.sql"] = &fstest.MapFile{Data: []byte(inbox.RetentionFiniteSchema)}
	return m
}

// A NaN or an Infinity in inbox_retentions, which the CHECK (... > 0) of
// RetentionSchema and RetentionRaiseSchema accepts (in PostgreSQL 'NaN' is
// above every number), is refused once RetentionFiniteSchema ran; a row
// that held one before is rewritten to what it meant: a retention the relay
// reads as for ever still reads so, and a previous window that left the
// consumer's window at its retention becomes none, with the same window.
// The step runs again without error.
func TestARecordedRetentionIsFiniteAndTheUpgradeKeepsWhatOneMeant(t *testing.T) {
	const day = 24 * time.Hour
	ctx := context.Background()
	older := retentionMigrations()
	delete(older, "0005_finite.sql")
	pool := pgtest.Open(t, older)
	if _, err := pool.Exec(ctx, `INSERT INTO inbox_retentions (consumer, retention_seconds, previous_retention_seconds, raised_at)
		VALUES ('index', 'NaN', NULL, NULL), ('notify', 'Infinity', NULL, NULL),
			('search', $1, 'NaN', now()), ('stats', $1, 'Infinity', now())`, (30 * day).Seconds()); err != nil {
		t.Fatal(err)
	}
	forEver := time.Duration(math.MaxInt64)
	want := []inbox.Recorded{{"index", forEver}, {"notify", forEver}, {"search", 30 * day}, {"stats", 30 * day}}
	before, err := inbox.RecordedRetentions(ctx, pool)
	if diff := cmp.Diff(want, before); diff != "" || err != nil {
		t.Fatalf("RecordedRetentions before the step (%v; -want +got):\n%s", err, diff)
	}

	if err := postgres.Migrate(ctx, pool, retentionMigrations()); err != nil {
		t.Fatal(err)
	}
	after, err := inbox.RecordedRetentions(ctx, pool)
	if diff := cmp.Diff(want, after); diff != "" || err != nil {
		t.Errorf("RecordedRetentions after the step (%v; -want +got):\n%s", err, diff)
	}
	var gone, finite bool
	if err := pool.QueryRow(ctx, `SELECT bool_and(previous_retention_seconds IS NULL) FILTER (WHERE raised_at IS NOT NULL),
		bool_and(retention_seconds < 'Infinity') FROM inbox_retentions`).Scan(&gone, &finite); err != nil || !gone || !finite {
		t.Errorf("after the step: previous windows gone %v, retentions finite %v (%v); want both", gone, finite, err)
	}
	for _, consumer := range []string{"search", "stats"} {
		if w, err := inbox.RecordRetention(ctx, pool, consumer, 30*day); err != nil || w.Previous != 0 || w.At(time.Now()) != 30*day {
			t.Errorf("%s recorded again at 30 days: %+v, %v; want no previous window, 30 days", consumer, w, err)
		}
	}

	for _, q := range []string{
		`INSERT INTO inbox_retentions (consumer, retention_seconds) VALUES ('nan', 'NaN')`,
		`INSERT INTO inbox_retentions (consumer, retention_seconds) VALUES ('inf', 'Infinity')`,
		`UPDATE inbox_retentions SET retention_seconds = 'NaN' WHERE consumer = 'stats'`,
		`UPDATE inbox_retentions SET previous_retention_seconds = 'NaN', raised_at = now() WHERE consumer = 'stats'`,
		`UPDATE inbox_retentions SET previous_retention_seconds = 'Infinity', raised_at = now() WHERE consumer = 'stats'`,
	} {
		if _, err := pool.Exec(ctx, q); !postgres.IsCheckViolation(err) {
			t.Errorf("%s: %v, want a check violation", q, err)
		}
	}
	if _, err := pool.Exec(ctx, inbox.RetentionFiniteSchema); err != nil {
		t.Errorf("RetentionFiniteSchema run again: %v", err)
	}
}

// A consumer raised from 30 to 60 days does not accept at once an event 45
// days old, whose processed-event record the relay pruned at 30 days until
// the raise: its window starts at 30 days and grows with the time since the
// raise (here recorded 10 days ago: 40 days, and 16 days ago: 46), reaching
// 60. Its next build with the same retention keeps the raise's window; a
// lowered retention takes effect at once; a first record has no previous
// window. Until 2026-12-06 a raise took effect at once and the 45-day event
// was read (and applied again).
func TestARaisedConsumerRefusesWhatTheRelayMayHavePruned(t *testing.T) {
	const day = 24 * time.Hour
	ctx := context.Background()
	pool := pgtest.Open(t, retentionMigrations())
	signer, verify := signerAndVerifyKey(t)
	// build is a consumer's build with retention: its Events.
	build := func(retention time.Duration) (inbox.Events, inbox.Window) {
		t.Helper()
		ev, err := inbox.EventsConfig{VerifyKey: verify, Retention: retention}.Events(nil)
		if err != nil {
			t.Fatal(err)
		}
		w, err := inbox.RecordRetention(ctx, pool, "stats", retention)
		if err != nil {
			t.Fatal(err)
		}
		return ev.Since(w), w
	}
	reads := func(ev inbox.Events, age time.Duration) bool {
		t.Helper()
		_, err := ev.Read(signedAt(t, signer, time.Now().Add(-age)), events.OrderPlaced)
		if err != nil && !fault.Is(err, fault.Invalid, fault.CodeEventExpired) {
			t.Fatalf("Read = %v, want the event or event_expired", err)
		}
		return err == nil
	}
	raisedAgo := func(ago time.Duration) {
		t.Helper()
		if _, err := pool.Exec(ctx, `UPDATE inbox_retentions SET raised_at = now() - $1::interval WHERE consumer = 'stats'`,
			ago.String()); err != nil {
			t.Fatal(err)
		}
	}

	ev, w := build(30 * day)
	if w.Previous != 0 || !reads(ev, 29*day) || reads(ev, 31*day) {
		t.Errorf("first record: %+v; want no previous window, 29 days read, 31 refused", w)
	}
	ev, w = build(60 * day)
	if w.Previous != 30*day || time.Since(w.RaisedAt) > time.Minute {
		t.Errorf("raised to 60 days: %+v, want the previous 30 days, raised now", w)
	}
	if reads(ev, 45*day) || !reads(ev, 29*day) {
		t.Error("just raised from 30 to 60 days: want 45 days refused, 29 read")
	}
	raisedAgo(10 * day)
	ev, w = build(60 * day) // another build, the same retention
	if got := w.At(time.Now()); got < 40*day-time.Minute || got > 40*day+time.Minute {
		t.Errorf("rebuilt 10 days after the raise: window %s (%+v), want 40 days", got, w)
	}
	if reads(ev, 45*day) || !reads(ev, 39*day) {
		t.Error("10 days after the raise: want 45 days refused, 39 read")
	}
	raisedAgo(16 * day) // from the rebuild's 40 days: 56
	if ev, _ = build(60 * day); !reads(ev, 45*day) || reads(ev, 57*day) {
		t.Error("16 more days: want 45 days read, 57 refused")
	}
	raisedAgo(30 * day)
	if ev, w = build(60 * day); w.Previous != 0 || !reads(ev, 59*day) {
		t.Errorf("once grown: %+v; want no previous window, 59 days read", w)
	}
	// Raised again, then lowered before the window grew to it: at once.
	build(90 * day)
	if ev, w = build(50 * day); w.Previous != 0 || reads(ev, 51*day) || !reads(ev, 49*day) {
		t.Errorf("lowered to 50 days: %+v; want no previous window, 51 days refused, 49 read", w)
	}
	// Lowered, but still above the window growing to it: that window
	// goes on growing, to the lower retention.
	build(90 * day)
	raisedAgo(5 * day)
	if ev, w = build(70 * day); (w.Previous-55*day).Abs() > time.Minute || reads(ev, 56*day) || !reads(ev, 54*day) {
		t.Errorf("raised to 90 days 5 days ago, then 70: %+v; want still growing from 55 days", w)
	}
}

var discard = slog.New(slog.DiscardHandler)

// A database whose processed_events table lacks a valid PruneIndex (its
// migration's build failed, or never ran) has nothing pruned: Prune says so
// with a warning naming the database, once an hour, where until 2026-12-08
// it returned 0 forever, silently, and the table grew unseen. A database
// without the table (not every service consumes events) is not warned of.
func TestPruneWarnsOfAMissingIndex(t *testing.T) {
	ctx := context.Background()
	noIndex := pgtest.Open(t, fstest.MapFS{"0001_init.sql": {Data: []byte(inbox.Schema)}})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for range 3 {
		if n, err := inbox.Prune(ctx, noIndex, time.Hour, log); err != nil || n != 0 {
			t.Fatalf("Prune without the index = %d, %v; want 0, nil", n, err)
		}
	}
	if got := strings.Count(logs.String(), "processed_events_processed_at"); got != 1 {
		t.Errorf("%d warnings naming the index after three cleanups, want 1:\n%s", got, logs.String())
	}
	var db string
	if err := noIndex.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), db) {
		t.Errorf("the warning is not at WARN naming database %s:\n%s", db, logs.String())
	}
	logs.Reset()
	empty := pgtest.Open(t, fstest.MapFS{"0001_none.sql": {Data: []byte(`CREATE TABLE other (n int);`)}})
	if _, err := inbox.Prune(ctx, empty, time.Hour, log); err != nil || logs.Len() != 0 {
		t.Errorf("Prune without the table: %v, logged %q; want nothing", err, logs.String())
	}
}
