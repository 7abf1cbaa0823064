package relay

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

const day = 24 * time.Hour

// retentionWarning is the start of the relay's warning about a consumer
// that keeps events longer than the relay's INBOX_RETENTION.
const retentionWarning = "a consumer keeps events longer than the relay's INBOX_RETENTION"

// A consumer whose INBOX_RETENTION (60 days) is longer than the relay's (30)
// still accepts an event 45 days old: the relay, reading the retention the
// consumer recorded as it was built (inbox.RecordRetention), keeps that
// event's processed-event record and, in the catalog, its settled sale, and
// prunes those past the consumer's 60 days; it warns once, naming the
// consumer and both retentions, however many cleanups follow. Until
// 2026-12-06 it pruned at its own 30 days, and a replay of that event was
// applied again (a sale counted twice, a second email).
func TestTheRelayKeepsTheRecordsAConsumerWithALongerRetentionStillNeeds(t *testing.T) {
	for _, tc := range []struct {
		database, consumer string
		open               func(t *testing.T) *pgxpool.Pool
		sales              bool
	}{
		{database: "catalog", consumer: "update-product-stats", open: func(t *testing.T) *pgxpool.Pool { return pgtest.Open(t, catalogdb.Migrations()) }, sales: true},
		{database: "users", consumer: "notify-user", open: func(t *testing.T) *pgxpool.Pool { return pgtest.Open(t, usersdb.Migrations()) }},
	} {
		t.Run(tc.database, func(t *testing.T) {
			names, _ := capture(t)
			pool := tc.open(t)
			ctx := context.Background()
			if _, err := inbox.RecordRetention(ctx, pool, tc.consumer, 60*day); err != nil {
				t.Fatal(err)
			}
			old := func(age string) {
				t.Helper()
				sqls := []string{`INSERT INTO processed_events (event_id, consumer, processed_at)
					VALUES (gen_random_uuid(), 'age ` + age + `', now() - interval '` + age + `')`}
				if tc.sales {
					sqls = append(sqls, `INSERT INTO order_sales (order_id, state, updated_at)
						VALUES (gen_random_uuid(), 'cancelled', now() - interval '`+age+`')`)
				}
				for _, sql := range sqls {
					if _, err := pool.Exec(ctx, sql); err != nil {
						t.Fatal(err)
					}
				}
			}
			count := func(age string) (n int) {
				t.Helper()
				sqls := []string{`SELECT count(*) FROM processed_events WHERE processed_at < now() - interval '` + age + `'`}
				if tc.sales {
					sqls = append(sqls, `SELECT count(*) FROM order_sales WHERE updated_at < now() - interval '`+age+`'`)
				}
				for _, sql := range sqls {
					var m int
					if err := pool.QueryRow(ctx, sql).Scan(&m); err != nil {
						t.Fatal(err)
					}
					n += m
				}
				return n
			}
			old("45 days")
			old("61 days")
			logs := &proctest.Output{}
			r, err := New(Config{Databases: []Database{{Name: tc.database, URL: pool.Config().ConnString()}}, BrokerURL: rabbitURL,
				Names: names, PollInterval: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, CleanupInterval: 50 * time.Millisecond,
				InboxRetention: 30 * day}, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			run(t, ctx, r)
			waitFor(t, 10*time.Second, "the records past the consumer's retention pruned", func() bool { return count("60 days") == 0 })
			// Another cleanup, with the same retention recorded: it
			// prunes again, and says nothing new.
			old("61 days")
			waitFor(t, 10*time.Second, "a record past the consumer's retention pruned by a later cleanup", func() bool { return count("60 days") == 0 })
			want := 1
			if tc.sales {
				want = 2
			}
			if n := count("44 days"); n != want {
				t.Errorf("%d records 45 days old left, want %d: the consumer, whose retention is 60 days, still accepts their events", n, want)
			}
			if n := strings.Count(logs.String(), retentionWarning); n != 1 {
				t.Errorf("warned %d times of the consumer's longer retention, want once:\n%s", n, logs)
			}
			for _, want := range []string{"consumer=" + tc.consumer, "consumer_retention=1440h0m0s", "inbox_retention=720h0m0s"} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the warning does not say %s:\n%s", want, logs)
				}
			}
		})
	}
}

// In the users database the notifications are kept at least as long as the
// processed-event records (Config.NotificationRetention): their unique event
// id is what keeps a replayed event whose record was pruned from notifying
// twice. A consumer that recorded a retention (120 days) longer than the
// relay's notification retention (90, here set explicitly) has them kept
// for its 120 days, and the relay says so once at info, with both values
// (until 2026-12-06 it exceeded an explicit NOTIFICATION_RETENTION silently);
// of the catalog database, which has no notifications, it says nothing.
func TestTheNotificationsAreKeptAsLongAsTheConsumersRetention(t *testing.T) {
	names, _ := capture(t)
	users := pgtest.Open(t, usersdb.Migrations())
	catalog := pgtest.Open(t, catalogdb.Migrations())
	ctx := context.Background()
	if _, err := inbox.RecordRetention(ctx, users, "notify-user", 120*day); err != nil {
		t.Fatal(err)
	}
	if _, err := inbox.RecordRetention(ctx, catalog, "update-product-stats", 120*day); err != nil {
		t.Fatal(err)
	}
	insert := func(age string) {
		t.Helper()
		if _, err := users.Exec(ctx, `INSERT INTO notifications (id, user_id, event_id, type, subject, created_at)
			VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), $1, 's', now() - $2::interval)`, age, age); err != nil {
			t.Fatal(err)
		}
	}
	insert("100 days")
	insert("121 days")
	logs := &proctest.Output{}
	r, err := New(Config{Databases: []Database{{Name: "users", URL: users.Config().ConnString()}, {Name: "catalog", URL: catalog.Config().ConnString()}},
		BrokerURL: rabbitURL, Names: names, PollInterval: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		CleanupInterval: 50 * time.Millisecond, NotificationRetention: 90 * day}, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	count := func(typ string) (n int) {
		t.Helper()
		if err := users.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE type = $1`, typ).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, 10*time.Second, "the notification past the consumer's retention pruned", func() bool { return count("121 days") == 0 })
	// A later cleanup too.
	insert("122 days")
	waitFor(t, 10*time.Second, "a notification past the consumer's retention pruned by a later cleanup", func() bool { return count("122 days") == 0 })
	if n := count("100 days"); n != 1 {
		t.Errorf("%d notifications 100 days old left, want 1: the consumer's retention is 120 days", n)
	}
	const kept = "notifications kept longer than NOTIFICATION_RETENTION"
	var told []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, kept) {
			told = append(told, line)
		}
	}
	if len(told) != 1 || !strings.Contains(told[0], "level=INFO") || !strings.Contains(told[0], "database=users") ||
		!strings.Contains(told[0], "notification_retention=2160h0m0s") || !strings.Contains(told[0], "applied=2880h0m0s") {
		t.Errorf("told %q, want one info line of the users database, with 2160h configured and 2880h applied:\n%s", told, logs)
	}
}

// A relay refused SELECT on the consumers' retentions (a database migrated
// before its role existed, whose grant split-roles.sh has not given yet)
// says so once, counts no database error and prunes with its own
// retention, as before: its session is not ended at every cleanup.
func TestARelayRefusedTheConsumersRetentionsSaysSoOnceAndGoesOn(t *testing.T) {
	names, deliveries := capture(t)
	catalog := pgtest.Open(t, catalogdb.Migrations())
	ctx := context.Background()
	if _, err := inbox.RecordRetention(ctx, catalog, "update-product-stats", 60*day); err != nil {
		t.Fatal(err)
	}
	url, password, _ := relayRole(t, catalog, "processed_events", "order_sales")
	if _, err := catalog.Exec(ctx, `INSERT INTO processed_events (event_id, consumer, processed_at)
		VALUES (gen_random_uuid(), 'update-product-stats', now() - interval '31 days')`); err != nil {
		t.Fatal(err)
	}
	logs := &proctest.Output{}
	reg := prometheus.NewRegistry()
	r, err := New(Config{Databases: []Database{{Name: "catalog", URL: url, Password: password}}, BrokerURL: rabbitURL,
		Names: names, PollInterval: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, CleanupInterval: 50 * time.Millisecond,
		InboxRetention: 30 * day}, slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	const warning = "consumers' inbox retentions not read"
	waitFor(t, 10*time.Second, "the relay saying it cannot read the retentions", func() bool {
		return strings.Contains(logs.String(), warning)
	})
	waitFor(t, 10*time.Second, "the record past the relay's own retention pruned", func() bool { return records(t, catalog) == 0 })
	for i := range 3 { // cleanups run meanwhile, every 50 ms, on the same session
		commitEvent(t, ctx, catalog, "after "+strconv.Itoa(i))
		receive(t, deliveries, 1, 10*time.Second)
	}
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("told %d times that the retentions cannot be read, want once:\n%s", n, logs)
	}
	if n := strings.Count(logs.String(), "relaying outbox"); n != 1 {
		t.Errorf("%d sessions started, want one:\n%s", n, logs)
	}
	if n := databaseErrors(t, reg); n != 0 {
		t.Errorf("%v database errors counted, want none", n)
	}
}

// A relay that may read the consumers' retentions but fails to (here a row
// security policy that divides by zero: any error other than a refused
// SELECT) prunes none of the records they may still need in that cleanup:
// with a consumer's 60 days recorded and its own 30, a record 45 days old
// stays, and the failure is one database error. Pruning with its own
// retention on any error would delete it.
func TestARelayThatCannotReadTheRetentionsPrunesNoRecord(t *testing.T) {
	names, _ := capture(t)
	catalog := pgtest.Open(t, catalogdb.Migrations())
	ctx := context.Background()
	if _, err := inbox.RecordRetention(ctx, catalog, "update-product-stats", 60*day); err != nil {
		t.Fatal(err)
	}
	url, password, _ := relayRole(t, catalog, "processed_events", "order_sales", "inbox_retentions")
	for _, sql := range []string{
		`ALTER TABLE inbox_retentions ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY unreadable ON inbox_retentions USING (1/0 = 1)`,
		`INSERT INTO processed_events (event_id, consumer, processed_at)
			VALUES (gen_random_uuid(), 'update-product-stats', now() - interval '45 days')`,
	} {
		if _, err := catalog.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() int { return records(t, catalog) }
	logs := &proctest.Output{}
	reg := prometheus.NewRegistry()
	// One cleanup, as the worker starts: the next would be an hour later.
	r, err := New(Config{Databases: []Database{{Name: "catalog", URL: url, Password: password}}, BrokerURL: rabbitURL,
		Names: names, PollInterval: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, CleanupInterval: time.Hour,
		InboxRetention: 30 * day}, slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	waitFor(t, 10*time.Second, "the cleanup failing or pruning", func() bool { return databaseErrors(t, reg) > 0 || kept() == 0 })
	if n := kept(); n != 1 {
		t.Errorf("%d records 45 days old left, want 1: the consumer's retention was not read, and it may be 60 days", n)
	}
	if n := databaseErrors(t, reg); n != 1 {
		t.Errorf("%v database errors counted, want 1", n)
	}
	if !strings.Contains(logs.String(), "division by zero") {
		t.Errorf("the log does not name the failure of the read:\n%s", logs)
	}
}

// A cleanup that stopped at a cap comes back cleanupCatchUp later, not a
// CleanupInterval later: with more old records than one cleanup deletes
// (inbox.PruneBatches batches) and an hour between cleanups, the rest goes
// within seconds. Until 2026-12-06 it waited the hour, so a rate above one
// capped cleanup per interval (about 167 records a second) outgrew the table.
func TestACappedCleanupComesBackSooner(t *testing.T) {
	names, _ := capture(t)
	catalog := pgtest.Open(t, catalogdb.Migrations())
	ctx := context.Background()
	const n = inbox.PruneBatches*postgres.DeleteBatch + 7
	if _, err := catalog.Exec(ctx, `INSERT INTO processed_events (event_id, consumer, processed_at)
		SELECT gen_random_uuid(), 'update-product-stats', now() - interval '45 days' FROM generate_series(1, $1)`, n); err != nil {
		t.Fatal(err)
	}
	kept := func() int { return records(t, catalog) }
	url, password, _ := relayRole(t, catalog, "processed_events", "order_sales", "inbox_retentions")
	r, err := New(Config{Databases: []Database{{Name: "catalog", URL: url, Password: password}}, BrokerURL: rabbitURL,
		Names: names, PollInterval: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, CleanupInterval: time.Hour,
		InboxRetention: 30 * day}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	waitFor(t, 3*cleanupCatchUp, "every old record pruned", func() bool { return kept() == 0 })
}

// records is how many processed-event records the database behind pool holds.
func records(t *testing.T, pool *pgxpool.Pool) (n int) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM processed_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
