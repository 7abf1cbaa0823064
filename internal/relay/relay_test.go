package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/tcpproxy"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

const rabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

func openOutbox(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	pool := pgtest.Open(t, fstest.MapFS{"0001_outbox.sql": {Data: []byte(outbox.Schema)}})
	return pool, pool.Config().ConnString()
}

// declareExchange declares the test's exchange under a unique prefix and
// returns its names and a channel; when the test ends it deletes the
// exchanges, the unrouted queue and the queue names.Prefix+s for each s in
// queueSuffixes.
func declareExchange(t *testing.T, queueSuffixes ...string) (broker.Names, *amqp.Channel) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs RabbitMQ; -short was asked for")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	names := broker.Names{Prefix: "test-" + hex.EncodeToString(b) + "."}
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		t.Fatalf("RabbitMQ is required for this test (%s): %v", rabbitURL, err)
	}
	t.Cleanup(func() {
		if c, err := conn.Channel(); err == nil {
			for _, suffix := range queueSuffixes {
				_, _ = c.QueueDelete(names.Prefix+suffix, false, false, false)
			}
			_, _ = c.QueueDelete(names.Unrouted(), false, false, false)
			_ = c.ExchangeDelete(names.Exchange(), false, false)
			_ = c.ExchangeDelete(names.Unrouted(), false, false)
		}
		_ = conn.Close()
	})
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.DeclareExchange(ch, names); err != nil {
		t.Fatal(err)
	}
	return names, ch
}

// capture declares the test's exchange (unique prefix) and a queue bound to
// every routing key, and returns the deliveries.
func capture(t *testing.T) (broker.Names, <-chan amqp.Delivery) {
	t.Helper()
	names, ch := declareExchange(t, "capture")
	q := names.Prefix + "capture"
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "#", names.Exchange(), false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return names, deliveries
}

func startRelay(t *testing.T, parent context.Context, cfg Config, beforeMark func(context.Context, string, []string)) (*prometheus.Registry, <-chan struct{}) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.PollInterval = 200 * time.Millisecond
	cfg.MaxBackoff = 300 * time.Millisecond
	r, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	r.beforeMark = beforeMark
	done := run(t, parent, r)
	return reg, done
}

// run runs r until the test ends; the channel closes when Run returns.
func run(t *testing.T, parent context.Context, r *Relay) <-chan struct{} {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return done
}

func insertEvent(t *testing.T, ctx context.Context, tx pgx.Tx, subject string) string {
	t.Helper()
	ev, err := events.New(ctx, "test", events.OrderPlaced, subject, map[string]string{"order_id": subject})
	if err != nil {
		t.Fatal(err)
	}
	ev.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if err := outbox.Append(ctx, tx, ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID
}

// publishedOnce commits one event with subject and checks that the relay
// publishes it.
func publishedOnce(t *testing.T, ctx context.Context, pool *pgxpool.Pool, deliveries <-chan amqp.Delivery, subject string) {
	t.Helper()
	var id string
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		id = insertEvent(t, ctx, tx, subject)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, deliveries, 1, 10*time.Second); got[0].MessageId != id {
		t.Errorf("published %s, want %s", got[0].MessageId, id)
	}
}

// commitEvent commits one event with subject in a transaction of its own.
func commitEvent(t *testing.T, ctx context.Context, pool *pgxpool.Pool, subject string) {
	t.Helper()
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		insertEvent(t, ctx, tx, subject)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// allMarked waits until the outbox holds no unpublished row.
func allMarked(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); unpublished(t, pool) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("events not marked published")
		}
	}
}

func receive(t *testing.T, deliveries <-chan amqp.Delivery, n int, within time.Duration) []amqp.Delivery {
	t.Helper()
	var got []amqp.Delivery
	timeout := time.After(within)
	for len(got) < n {
		select {
		case d := <-deliveries:
			got = append(got, d)
		case <-timeout:
			t.Fatalf("received %d messages within %s, want %d", len(got), within, n)
		}
	}
	return got
}

// receiveNudged is receive for a relay whose poll is too far off to wait
// for. A read holds back a row committed after the oldest transaction still
// running anywhere in the cluster (outbox order: that transaction may yet
// commit an earlier event), and make test runs many databases' tests at once.
// The relay reads such a row again by itself (drain); a NOTIFY when nothing
// more has come for 5 s, and again every 5 s, is only a safety net, so that a
// failure names what did not come. It reports whether it had to: the reads
// it caused are not the relay's own.
func receiveNudged(t *testing.T, ctx context.Context, pool *pgxpool.Pool, deliveries <-chan amqp.Delivery, n int) bool {
	t.Helper()
	const quiet, nudges = 5 * time.Second, 4
	got, nudged := 0, 0
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	for got < n {
		select {
		case <-deliveries:
			got++
			timer.Reset(quiet)
		case <-timer.C:
			if nudged == nudges {
				t.Fatalf("received %d messages, want %d; none for %s after each of %d notifications", got, n, quiet, nudges)
			}
			if _, err := pool.Exec(ctx, "SELECT pg_notify($1, '')", outbox.Channel); err != nil {
				t.Fatal(err)
			}
			nudged++
			timer.Reset(quiet)
		}
	}
	return nudged > 0
}

func noMore(t *testing.T, deliveries <-chan amqp.Delivery, wait time.Duration) {
	t.Helper()
	select {
	case d := <-deliveries:
		t.Errorf("unexpected extra message %s (%s)", d.MessageId, d.RoutingKey)
	case <-time.After(wait):
	}
}

func unpublished(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func ids(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.MessageId
	}
	return out
}

// Two concurrent transactions, the later-started committing first: the relay
// waits for the older one and publishes both exactly once, in transaction order.
func TestOutOfOrderCommitsPublishedOnceInTransactionOrder(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	signer, verifier := events.NewTestKeys()
	startRelay(t, ctx, Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names,
		Signer: signer}, nil)

	older, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = older.Rollback(ctx) }()
	first := insertEvent(t, ctx, older, "first")
	var second string
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		second = insertEvent(t, ctx, tx, "second")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The younger transaction committed, but the older one is still open: its
	// row must not be overtaken.
	noMore(t, deliveries, 1200*time.Millisecond)
	if err := older.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := receive(t, deliveries, 2, 10*time.Second)
	if diff := cmp.Diff([]string{first, second}, ids(got)); diff != "" {
		t.Errorf("published order (-want +got):\n%s", diff)
	}
	d := got[0]
	if d.RoutingKey != events.OrderPlaced || d.ContentType != broker.ContentType || d.DeliveryMode != amqp.Persistent ||
		d.Headers["traceparent"] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("message: routing key %q content type %q mode %d headers %v", d.RoutingKey, d.ContentType, d.DeliveryMode, d.Headers)
	}
	if ev, err := events.Decode(d.Body); err != nil || ev.ID != first {
		t.Errorf("body is not the envelope of %s: %v %+v", first, err, ev)
	}
	for _, d := range got {
		if err := verifier.Verify(d.Body, broker.HeaderString(d.Headers, "shop-signature")); err != nil {
			t.Errorf("message %s: the relay's signature: %v", d.MessageId, err)
		}
	}
	noMore(t, deliveries, 800*time.Millisecond)
	if n := unpublished(t, pool); n != 0 {
		t.Errorf("%d rows still unpublished", n)
	}
}

// A relay stopped between the confirms and the UPDATE leaves the rows
// pending; the next relay publishes them again, so none is lost.
func TestRelayKilledMidBatchRepublishes(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	var want []string
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range []string{"a", "b", "c"} {
			want = append(want, insertEvent(t, ctx, tx, s))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names}
	var once sync.Once
	firstCtx, cancelFirst := context.WithCancel(ctx)
	defer cancelFirst()
	killed := make(chan []string, 1)
	_, done := startRelay(t, firstCtx, cfg, func(_ context.Context, _ string, batch []string) {
		once.Do(func() {
			killed <- batch
			cancelFirst()
		})
	})
	select {
	case batch := <-killed:
		if diff := cmp.Diff(want, batch); diff != "" {
			t.Errorf("killed batch (-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay never reached the mark step")
	}
	<-done
	if diff := cmp.Diff(want, ids(receive(t, deliveries, 3, 5*time.Second))); diff != "" {
		t.Errorf("first delivery (-want +got):\n%s", diff)
	}
	if n := unpublished(t, pool); n != 3 {
		t.Fatalf("%d rows unpublished after the kill, want 3", n)
	}
	startRelay(t, ctx, cfg, nil)
	if diff := cmp.Diff(want, ids(receive(t, deliveries, 3, 10*time.Second))); diff != "" {
		t.Errorf("republished (-want +got):\n%s", diff)
	}
	noMore(t, deliveries, 800*time.Millisecond)
	if n := unpublished(t, pool); n != 0 {
		t.Errorf("%d rows still unpublished", n)
	}
}

// With the broker unreachable, rows stay pending (and the lag metric says so);
// once it is reachable they are published.
func TestBrokerUnavailableThenBack(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	reg, _ := startRelay(t, ctx, Config{Databases: []Database{{Name: "orders", URL: url}},
		BrokerURL: "amqp://guest:guest@" + addr + "/", Names: names}, nil)
	var id string
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		id = insertEvent(t, ctx, tx, "x")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := unpublished(t, pool); n != 1 {
		t.Fatalf("%d rows pending while the broker is down, want 1", n)
	}
	if v := gauge(t, reg, "shop_outbox_pending_events"); v != 1 {
		t.Errorf("pending gauge %v while the broker is down, want 1", v)
	}
	if v := gauge(t, reg, "shop_outbox_oldest_pending_age_seconds"); v < 1 {
		t.Errorf("oldest pending age %v, want >= 1 s", v)
	}
	tcpproxy.Listen(t, addr, "127.0.0.1:5672")
	got := receive(t, deliveries, 1, 15*time.Second)
	if got[0].MessageId != id {
		t.Errorf("published %s, want %s", got[0].MessageId, id)
	}
	deadline := time.Now().Add(5 * time.Second)
	for unpublished(t, pool) != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := unpublished(t, pool); n != 0 {
		t.Errorf("%d rows still pending after the broker came back", n)
	}
}

// A database that does not exist yet is retried, not fatal: the relay serves
// the other databases meanwhile.
func TestMissingDatabaseDoesNotStopOthers(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	startRelay(t, ctx, Config{Databases: []Database{
		{Name: "missing", URL: pgtest.URL(t, "no_such_database_h7")},
		{Name: "orders", URL: url},
	}, BrokerURL: rabbitURL, Names: names}, nil)
	publishedOnce(t, ctx, pool, deliveries, "y")
}

// TestRelayQueriesPerEvent: an event that wakes an idle relay costs it the
// read of the batch and the mark after the confirm; the lag metrics'
// count(*) runs at most once per PollInterval, not on every wakeup (it was a
// third of the relay's queries).
func TestRelayQueriesPerEvent(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	const poll = 2 * time.Second
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names,
		PollInterval: poll}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	counted := &queryKinds{n: map[string]int{}}
	r.tracer = counted
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(rctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// One event at a time, each published and marked before the next.
	relayOne := func(subject string) {
		t.Helper()
		commitEvent(t, ctx, pool, subject)
		receive(t, deliveries, 1, 10*time.Second)
		allMarked(t, pool)
	}
	relayOne("warm-up") // the session's LISTEN, first read and first metrics refresh
	counted.reset()
	start := time.Now()
	const n = 10
	for i := range n {
		relayOne(fmt.Sprint("order-", i))
	}
	got := counted.counts()
	if most := 2 + int(time.Since(start)/poll); got["lag"] > most {
		t.Errorf("%d lag queries for %d events in %s, want at most %d (once per poll interval of %s)",
			got["lag"], n, time.Since(start).Round(time.Millisecond), most, poll)
	}
	if got["mark"] != n {
		t.Errorf("%d marks for %d events, want one each", got["mark"], n)
	}
	// A mark lost in a crash only publishes its rows again, which every
	// handler's inbox drops: the relay's session does not wait for the WAL.
	if sc := counted.markCommit(); sc != "off" {
		t.Errorf("the relay's marks run with synchronous_commit %q (empty: the server's default, on), want off", sc)
	}
	t.Logf("%d events: %v", n, got)
}

// Events committed one transaction each, in a burst, go out in one batch
// when they commit within BatchWait of the first: one read that finds them,
// one confirm round, one mark. Their notifications, which the relay receives
// during that read, cause one more read between them, not one each.
//
// The batch wait is generous (the 10 commits took 6 to 140 ms under -race
// on two loaded cores); a burst slower than it proves nothing and is tried
// again, and the test fails, never skips, when three in a row are. So is a
// burst a row of which a read held back (another database's transaction
// was older, see drain): it went out in two batches for a reason outside
// the relay.
func TestCommitsBehindAWakeUpShareABatch(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	const wait = 2 * time.Second
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names,
		BatchWait: wait, PollInterval: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	counted := &queryKinds{n: map[string]int{}}
	r.tracer = counted
	run(t, ctx, r)
	commitEvent(t, ctx, pool, "warm-up") // the session's LISTEN, first read and first metrics refresh
	receiveNudged(t, ctx, pool, deliveries, 1)
	allMarked(t, pool)
	time.Sleep(2 * wait) // the read that follows the warm-up's notification
	counted.reset()

	// Slow bursts may be tried three times; bursts with rows held back by
	// other packages' transactions, which come and go, ten.
	const n, slowAttempts, heldAttempts = 10, 3, 10
	var got map[string]int
	slow, heldBack := 0, 0
	for attempt := 1; ; attempt++ {
		heldBefore := r.heldReads.Load()
		start := time.Now()
		for i := range n {
			commitEvent(t, ctx, pool, fmt.Sprint("order-", attempt, "-", i))
		}
		burst := time.Since(start)
		nudged := receiveNudged(t, ctx, pool, deliveries, n)
		allMarked(t, pool)
		time.Sleep(2 * wait) // the read that follows the batch's notifications
		got = counted.counts()
		held := r.heldReads.Load() - heldBefore
		t.Logf("%d events committed in %s (reads that held rows back: %d, nudged: %t): %v", n, burst.Round(time.Millisecond), held, nudged, got)
		if burst < wait && held == 0 && !nudged {
			break
		}
		if burst >= wait {
			slow++
		} else {
			heldBack++
		}
		if slow == slowAttempts || heldBack == heldAttempts {
			t.Fatalf("of %d bursts of %d commits, %d took longer than the batch wait of %s and %d had rows held back by another transaction (the last %s, held back %d times, nudged: %t): nothing shows whether commits behind a wake-up share a batch",
				attempt, n, slow, wait, heldBack, burst.Round(time.Millisecond), held, nudged)
		}
		counted.reset()
	}
	if got["mark"] != 1 {
		t.Errorf("%d marks for %d events committed within the batch wait, want 1", got["mark"], n)
	}
	if got["read"] > 2 {
		t.Errorf("%d reads for %d events committed within the batch wait, want at most 2", got["read"], n)
	}
}

// A row committed while an older transaction still runs anywhere in the
// cluster is held back (it might otherwise go out before an event that
// transaction commits later). When that transaction ends without touching
// this outbox, no notification comes: the relay read again only at its poll,
// a second by default, and here a minute. Now a read that held rows back is
// followed by another within milliseconds, less often while they stay held.
func TestARowHeldBackGoesOutWhenTheOlderTransactionEnds(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names,
		BatchWait: NoBatchWait, PollInterval: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	// make test's other packages' transactions hold rows back too, a few
	// seconds at the most: every wait here stays well short of the poll.
	const within = 40 * time.Second
	commitEvent(t, ctx, pool, "warm-up")
	receive(t, deliveries, 1, within)

	// Another database's writing transaction, older than the event's.
	other, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	held := r.heldReads.Load()
	commitEvent(t, ctx, pool, "behind")
	for deadline := time.Now().Add(10 * time.Second); r.heldReads.Load() < held+2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not read the held row again within 10 s (held-back reads: %d)", r.heldReads.Load()-held)
		}
	}
	noMore(t, deliveries, 200*time.Millisecond) // still held while the older transaction runs
	ended := time.Now()
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	receive(t, deliveries, 1, within)
	t.Logf("published %s after the older transaction ended", time.Since(ended).Round(time.Millisecond))
	allMarked(t, pool)
}

// The relay's session starts on an empty outbox and keeps it for days. A
// statement PostgreSQL prepares on that session is planned for its
// parameters only five times; after that it may keep one generic plan made
// for the table as it was. The mark kept a sequential scan chosen while the
// table was small and, on a server whose autovacuum does not analyze the
// table (this machine's), read the whole outbox for every batch ever after:
// 300 pages a mark by the end of a bench run, a week of rows in production.
// Planning every statement afresh fixed the mark but turned the read into a
// bitmap scan, which visits the heap page of every dead entry of the index
// of pending rows at every read. Publishing an event must read a few pages
// however big the outbox grows and however many dead entries it holds.
func TestPublishingReadsAFewPagesHoweverBigTheOutbox(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names,
		// The poll, as in production: the lag's count(*) it adds reads
		// the index of pending rows. No cleanup runs after the first.
		BatchWait: NoBatchWait, PollInterval: 200 * time.Millisecond, CleanupInterval: time.Hour},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	// While the outbox is small, enough marks for PostgreSQL to settle on
	// a plan (it compares a generic plan with the custom ones after five),
	// each of a batch of 8 events, as a burst of orders makes: for so many
	// keys in a table of a few pages, a scan is the cheaper plan.
	const batches, batch = 7, 8
	for b := range batches {
		if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
			for i := range batch {
				insertEvent(t, ctx, tx, fmt.Sprint("small-", b, "-", i))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		receive(t, deliveries, batch, 10*time.Second)
		allMarked(t, pool)
	}
	// A week's worth of published rows, in miniature: the table grows to
	// hundreds of pages. Each row is written pending and marked, as the
	// relay's rows are, so that the index of pending rows holds an entry for
	// each row's first version, dead once marked, until a vacuum.
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, type, source, envelope)
			SELECT gen_random_uuid(), 'test.filler.v1', 'test', jsonb_build_object('pad', repeat('x', 900))
			FROM generate_series(1, 5000)`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE type = 'test.filler.v1'`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The table's pages, and the pages of it read so far (PostgreSQL counts
	// a bitmap heap scan, the relay's read, as a sequential scan in
	// pg_stat_user_tables: pages read is what tells a key lookup from a scan).
	reads := func() (pages, read, inserted, updated int64) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT pg_relation_size('outbox') / current_setting('block_size')::int,
				io.heap_blks_hit + coalesce(io.heap_blks_read, 0), st.n_tup_ins, st.n_tup_upd
			FROM pg_statio_user_tables io JOIN pg_stat_user_tables st USING (relid) WHERE io.relname = 'outbox'`).
			Scan(&pages, &read, &inserted, &updated); err != nil {
			t.Fatal(err)
		}
		return pages, read, inserted, updated
	}
	// A backend reports its table statistics when it goes idle, not more
	// often than once a second: wait until the rows written so far show.
	settled := func(what string, done func(inserted, updated int64) bool) (pages, read, updated int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			pages, read, inserted, updated := reads()
			if done(inserted, updated) {
				return pages, read, updated
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not reach pg_stat_user_tables within 30 s (inserted %d, updated %d)", what, inserted, updated)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The first read after the filler visits the page of each dead entry
	// once, and an index scan learns to skip them from then on.
	publishedOnce(t, ctx, pool, deliveries, "after-filler")
	const before = 5000 + batches*batch + 1
	pages, readBefore, _ := settled("the filler and the first marks", func(ins, upd int64) bool {
		return ins >= before && upd >= before
	})
	const n = 5
	for i := range n {
		publishedOnce(t, ctx, pool, deliveries, fmt.Sprint("large-", i))
	}
	_, readAfter, _ := settled("the relay's marks", func(_, upd int64) bool { return upd >= before+n })
	perEvent := (readAfter - readBefore) / n
	t.Logf("%d events published and marked one at a time: %d of the outbox's %d pages read per event", n, perEvent, pages)
	if perEvent > pages/10 {
		t.Errorf("%d pages of the outbox's %d read per event published, want a few: each batch read the table",
			perEvent, pages)
	}
}

// queryKinds counts a relay's queries by kind: read (the batch), mark
// (published_at), lag (the metrics' count), other.
// It also keeps the synchronous_commit setting of the session that marked.
type queryKinds struct {
	mu     sync.Mutex
	n      map[string]int
	commit string
}

func (q *queryKinds) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	kind := "other"
	switch {
	case strings.Contains(d.SQL, "SELECT seq"):
		kind = "read"
	case strings.Contains(d.SQL, "UPDATE outbox SET published_at"):
		kind = "mark"
	case strings.Contains(d.SQL, "count(*)"):
		kind = "lag"
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n[kind]++
	if kind == "mark" {
		q.commit = conn.Config().RuntimeParams["synchronous_commit"]
	}
	return ctx
}

func (q *queryKinds) markCommit() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.commit
}

func (q *queryKinds) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (q *queryKinds) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.n)
}

func (q *queryKinds) counts() map[string]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return maps.Clone(q.n)
}

// On a developer machine (DATABASE_CREATE=true) a service's database appears
// with its functions' first request; until then the relay waits without
// counting errors (which would fire OutboxRelayErrors) or logging every retry,
// and relays as soon as the database is there. In production a missing
// database stays an error.
func TestADatabaseNotCreatedYetIsAwaitedQuietly(t *testing.T) {
	t.Run("production", func(t *testing.T) {
		logs := &proctest.Output{}
		r, err := New(Config{Databases: []Database{{Name: "absent", URL: pgtest.URL(t, "no_such_database_q3")}},
			BrokerURL: rabbitURL, MaxBackoff: 100 * time.Millisecond}, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		r.Run(ctx)
		if n := testutil.ToFloat64(r.metrics.errors.WithLabelValues("absent", "database")); n < 2 {
			t.Errorf("%v database errors counted for a missing database in production, want every attempt", n)
		}
		if !strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("no warning for a missing database in production; logs:\n%s", logs)
		}
	})
	names, deliveries := capture(t)
	url, _ := pgtest.MissingDatabase(t)
	missingDatabasePoll, missingDatabasePollMax = 100*time.Millisecond, 200*time.Millisecond
	t.Cleanup(func() { missingDatabasePoll, missingDatabasePollMax = 500*time.Millisecond, 2*time.Second })
	logs := &proctest.Output{}
	reg := prometheus.NewRegistry()
	// MaxBackoff an hour: backed off from as from an outage, the database
	// would be tried at 0, 0.2, 0.6, 1.4, 3.0 ... s, its twelfth try
	// 0.2 × (2¹¹ - 1) s, about 7 minutes, after the first.
	r, err := New(Config{Databases: []Database{{Name: "later", URL: url}}, BrokerURL: rabbitURL, Names: names,
		PollInterval: 200 * time.Millisecond, MaxBackoff: time.Hour, CreatedOnDemand: true},
		slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	attempts := &connectAttempts{}
	r.tracer = attempts
	ctx := context.Background()
	run(t, ctx, r)

	// Polled (every 100 to 200 ms here, set before the relay starts), the
	// database is tried twelve times within about 2 s. The test counts the
	// relay's connection attempts, not the time an event takes: the minute
	// only bounds how long a broken relay is waited for, and a slower
	// machine makes fewer tries in it, never more, so it cannot make a
	// relay that backs off (7 minutes to its twelfth try) or tries once
	// pass. (It measured the first event's delay after the database was
	// created, which told a backed-off try only when creating the database
	// took under about 1.6 s.)
	const tries = 12
	if got := attempts.await(tries, time.Minute); got < tries {
		t.Fatalf("%d connection attempts to a database not created yet within a minute, want %d: "+
			"it is backed off from or given up on, not polled", got, tries)
	}
	if n := testutil.ToFloat64(r.metrics.errors.WithLabelValues("later", "database")); n != 0 {
		t.Errorf("%v database errors counted for a database not created yet, want 0", n)
	}
	if n := strings.Count(logs.String(), "not created yet"); n != 1 {
		t.Errorf("%d lines say the database is not created yet, want 1; logs:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a warning for a database not created yet; logs:\n%s", logs)
	}
	// Nothing can be pending in a database that does not exist: that is
	// measured, so OutboxLagHigh does not take the lag for unknown.
	if at := gauge(t, reg, observedMetric); at < float64(time.Now().Add(-3*time.Second).Unix()) {
		t.Errorf("%s = %v while the database is not created yet, want refreshed by every look for it", observedMetric, at)
	}

	pool, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2, CreateDatabase: true,
		Migrations: fstest.MapFS{"0001_outbox.sql": {Data: []byte(outbox.Schema)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	publishedOnce(t, ctx, pool, deliveries, "later")
}

// connectAttempts counts a relay's database connection attempts (pgx calls
// a ConnectTracer at the start of each, refused or not).
type connectAttempts struct{ n atomic.Int64 }

func (c *connectAttempts) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *connectAttempts) TraceConnectEnd(context.Context, pgx.TraceConnectEndData) {}

func (c *connectAttempts) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (c *connectAttempts) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// await waits until n attempts were made, or within has passed, and returns
// the count.
func (c *connectAttempts) await(n int64, within time.Duration) int64 {
	deadline := time.Now().Add(within)
	for c.n.Load() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return c.n.Load()
}

// The cleanup deletes the rows published before the retention, oldest
// first, and reads only those: the rest of the outbox, a week of rows in
// production, is not read every ten minutes to find them. A row still
// pending is kept whatever its age, and so are the rows behind it until it
// is published (the relay publishes in order: it is published first). The
// plans must not depend on the table's statistics, which this machine's
// PostgreSQL (autovacuum off) never takes and a production server does.
func TestCleanupReadsOnlyTheRowsItDeletes(t *testing.T) {
	for _, analyzed := range []bool{false, true} {
		t.Run(fmt.Sprint("analyzed=", analyzed), func(t *testing.T) {
			pool, _ := openOutbox(t)
			ctx := context.Background()
			// In seq order: 700 rows published 8 days ago, one row still
			// pending, 20 rows published 8 days ago, and 6,000 rows
			// published within the week.
			const old, behind, young = 700, 20, 6000
			if _, err := pool.Exec(ctx, `INSERT INTO outbox (id, type, source, envelope, published_at)
				SELECT gen_random_uuid(), kind, 'test', jsonb_build_object('pad', repeat('x', 400)),
					CASE kind WHEN 'pending' THEN NULL WHEN 'young' THEN now() - interval '1 day' ELSE now() - interval '8 days' END
				FROM (SELECT i, CASE WHEN i <= $1 THEN 'old' WHEN i = $1 + 1 THEN 'pending'
						WHEN i <= $1 + 1 + $2 THEN 'behind' ELSE 'young' END AS kind
					FROM generate_series(1, $1 + 1 + $2 + $3) i) k
				ORDER BY i`, old, behind, young); err != nil {
				t.Fatal(err)
			}
			if analyzed {
				if _, err := pool.Exec(ctx, `ANALYZE outbox`); err != nil {
					t.Fatal(err)
				}
			}
			kinds := func(tx pgx.Tx) map[string]int {
				t.Helper()
				rows, err := tx.Query(ctx, `SELECT type, count(*)::int FROM outbox GROUP BY type`)
				if err != nil {
					t.Fatal(err)
				}
				m := map[string]int{}
				var kind string
				var n int
				if _, err := pgx.ForEachRow(rows, []any{&kind, &n}, func() error { m[kind] = n; return nil }); err != nil {
					t.Fatal(err)
				}
				return m
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			before := pgtest.RowsRead(t, tx, "outbox")
			deleted, _, err := prune(ctx, tx, 7*24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			rowsRead := pgtest.RowsRead(t, tx, "outbox") - before
			t.Logf("deleted %d rows of %d, reading %d", deleted, old+1+behind+young, rowsRead)
			if deleted != old {
				t.Errorf("deleted %d rows, want the %d published before the retention and before the pending row", deleted, old)
			}
			if diff := cmp.Diff(map[string]int{"pending": 1, "behind": behind, "young": young}, kinds(tx)); diff != "" {
				t.Errorf("rows left by type (-want +got):\n%s", diff)
			}
			// The bound's walk reads the old rows and the pending one, and
			// the delete reads the old rows again.
			if rowsRead > 2*old+10 {
				t.Errorf("read %d rows of the outbox to delete %d, want about twice that: the cleanup read the rows it keeps", rowsRead, old)
			}
			// Once the pending row is published (by the relay, before the
			// rows behind it), the next cleanup deletes the rows behind it.
			if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() - interval '8 days' WHERE type = 'pending'`); err != nil {
				t.Fatal(err)
			}
			if deleted, _, err = prune(ctx, tx, 7*24*time.Hour); err != nil || deleted != 1+behind {
				t.Errorf("second cleanup deleted %d rows (%v), want %d", deleted, err, 1+behind)
			}
			if diff := cmp.Diff(map[string]int{"young": young}, kinds(tx)); diff != "" {
				t.Errorf("rows left by type after the second cleanup (-want +got):\n%s", diff)
			}
		})
	}
}

// A cleanup over a backlog of old rows larger than its window walks the
// primary key a window at a time: no walk for the oldest row to keep reads
// more than a window's rows, however many there are to delete; a cleanup
// walks at most its windows (publishing waits for it), and the next goes
// on, until every old row is deleted and the oldest row to keep stops it.
// One walk over every old row outlasted the statement deadline on a large
// backlog, and such a cleanup never deleted anything (a window as large as
// the backlog, as before, reads it all in one statement and fails the
// test).
func TestCleanupWalksTheBacklogAWindowAtATime(t *testing.T) {
	pool, _ := openOutbox(t)
	ctx := context.Background()
	const old, young, window = 2000, 20, 100
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (id, type, source, envelope, published_at)
		SELECT gen_random_uuid(), kind, 'test', '{}',
			CASE kind WHEN 'pending' THEN NULL WHEN 'young' THEN now() - interval '1 day' ELSE now() - interval '8 days' END
		FROM (SELECT i, CASE WHEN i <= $1 THEN 'old' WHEN i = $1 + 1 THEN 'pending' ELSE 'young' END AS kind
			FROM generate_series(1, $1 + 1 + $2) i) k
		ORDER BY i`, old, young); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	meter := &walkMeter{t: t, tx: tx}
	var deleted int64
	for cleanup := 1; ; cleanup++ {
		n, _, err := pruneWindows(ctx, meter, 7*24*time.Hour, window, 4)
		if err != nil {
			t.Fatal(err)
		}
		if n > 4*window {
			t.Fatalf("cleanup %d deleted %d rows, want at most its 4 windows' %d", cleanup, n, 4*window)
		}
		deleted += n
		if n == 0 || cleanup == 10 {
			break
		}
	}
	if deleted != old {
		t.Errorf("deleted %d rows, want the %d before the pending row", deleted, old)
	}
	var left int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type <> 'old'`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 1+young {
		t.Errorf("%d rows left of the pending and the young ones, want %d", left, 1+young)
	}
	if meter.max > window+5 {
		t.Errorf("one walk read %d rows of the outbox, want at most about the window's %d", meter.max, window)
	}
}

// walkMeter is a postgres.Querier over tx that records the most rows of the
// outbox any one QueryRow read.
type walkMeter struct {
	t   *testing.T
	tx  pgx.Tx
	max int64
}

func (m *walkMeter) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	before := pgtest.RowsRead(m.t, m.tx, "outbox")
	return meteredRow{Row: m.tx.QueryRow(ctx, sql, args...), after: func() {
		m.max = max(m.max, pgtest.RowsRead(m.t, m.tx, "outbox")-before)
	}}
}

func (m *walkMeter) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return m.tx.Exec(ctx, sql, args...)
}

// meteredRow calls after once its row is read (the statement has ended).
type meteredRow struct {
	pgx.Row
	after func()
}

func (r meteredRow) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	r.after()
	return err
}

// A cleanup with more rows to delete than one batch deletes them all, in
// batches, and leaves the outbox empty when every row is past the retention.
func TestCleanupDeletesInBatches(t *testing.T) {
	pool, _ := openOutbox(t)
	ctx := context.Background()
	const n = 2*postgres.DeleteBatch + 7
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (id, type, source, envelope, published_at)
		SELECT gen_random_uuid(), 'old', 'test', '{}', now() - interval '8 days' FROM generate_series(1, $1)`, n); err != nil {
		t.Fatal(err)
	}
	deleted, _, err := prune(ctx, pool, 7*24*time.Hour)
	if err != nil || deleted != n {
		t.Fatalf("prune = %d, %v; want %d deleted", deleted, err, n)
	}
	if left := unpublished(t, pool); left != 0 {
		t.Errorf("%d rows left", left)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("outbox holds %d rows (%v), want none", rows, err)
	}
}

// A running relay deletes the users database's notifications created before
// NotificationRetention (default 90 days) and keeps the younger ones; the
// other databases, which have no such table, are cleaned up as before.
// Until 2026-12-03 notifications were kept for ever.
func TestRelayDeletesNotificationsCreatedBeforeTheRetention(t *testing.T) {
	names, _ := capture(t)
	users := pgtest.Open(t, usersdb.Migrations())
	_, other := openOutbox(t)
	ctx := context.Background()
	if _, err := users.Exec(ctx, `INSERT INTO notifications (id, user_id, event_id, type, subject, created_at)
		SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), CASE WHEN i <= 3 THEN 'old' ELSE 'young' END, 's',
			CASE WHEN i <= 3 THEN now() - interval '91 days' ELSE now() - interval '89 days' END
		FROM generate_series(1, 5) i`); err != nil {
		t.Fatal(err)
	}
	startRelay(t, ctx, Config{Databases: []Database{{Name: "users", URL: users.Config().ConnString()}, {Name: "orders", URL: other}},
		BrokerURL: rabbitURL, Names: names}, nil)
	count := func(typ string) int {
		t.Helper()
		var n int
		if err := users.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE type = $1`, typ).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); count("old") != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications created before the retention left after 10 s", count("old"))
		}
	}
	if n := count("young"); n != 2 {
		t.Errorf("%d notifications created within the retention left, want 2", n)
	}
}

// A running relay deletes the catalog database's settled sales (cancelled,
// or cancelled first) last changed before the inbox retention, and keeps the
// placed ones and the younger settled ones (catalogdb.PruneOrderSales). Until
// 2026-12-06 every checkout refused at once left a sale for ever.
func TestRelayDeletesSettledSalesPastTheInboxRetention(t *testing.T) {
	names, _ := capture(t)
	catalog := pgtest.Open(t, catalogdb.Migrations())
	_, other := openOutbox(t)
	ctx := context.Background()
	if _, err := catalog.Exec(ctx, `INSERT INTO order_sales (order_id, state, updated_at)
		SELECT gen_random_uuid(), s, now() - d
		FROM unnest(ARRAY['cancelled', 'cancelled_first', 'placed', 'cancelled', 'cancelled_first'],
			ARRAY[interval '31 days', interval '31 days', interval '31 days', interval '29 days', interval '29 days']) AS t(s, d)`); err != nil {
		t.Fatal(err)
	}
	startRelay(t, ctx, Config{Databases: []Database{{Name: "catalog", URL: catalog.Config().ConnString()}, {Name: "orders", URL: other}},
		BrokerURL: rabbitURL, Names: names}, nil)
	count := func(where string) int {
		t.Helper()
		var n int
		if err := catalog.QueryRow(ctx, `SELECT count(*) FROM order_sales WHERE `+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); count(`state <> 'placed' AND updated_at < now() - interval '30 days'`) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d settled sales older than the inbox retention left after 10 s", count(`state <> 'placed' AND updated_at < now() - interval '30 days'`))
		}
	}
	if n := count(`true`); n != 3 {
		t.Errorf("%d sales left, want 3 (the old placed one, the two young settled ones)", n)
	}
}

// Where the settled sales cannot be pruned yet (here their index missing,
// as while a rollout builds it), a running relay says so once and goes on:
// its session is not ended at every cleanup, and no database error is
// counted (catalogdb.ErrSalesKept).
func TestARelayThatCannotPruneTheSalesSaysSoOnceAndGoesOn(t *testing.T) {
	names, deliveries := capture(t)
	catalog := pgtest.Open(t, catalogdb.Migrations())
	ctx := context.Background()
	if _, err := catalog.Exec(ctx, `DROP INDEX order_sales_settled_at`); err != nil {
		t.Fatal(err)
	}
	logs := &proctest.Output{}
	reg := prometheus.NewRegistry()
	r, err := New(Config{Databases: []Database{{Name: "catalog", URL: catalog.Config().ConnString()}}, BrokerURL: rabbitURL,
		Names: names, PollInterval: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, CleanupInterval: 50 * time.Millisecond},
		slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	waitFor(t, 10*time.Second, "the relay saying the sales are kept", func() bool {
		return strings.Contains(logs.String(), "order sales not pruned")
	})
	for i := range 3 { // cleanups run meanwhile, every 50 ms, on the same session
		commitEvent(t, ctx, catalog, fmt.Sprint("after ", i))
		receive(t, deliveries, 1, 10*time.Second)
	}
	if n := strings.Count(logs.String(), "order sales not pruned"); n != 1 {
		t.Errorf("told %d times that the sales are kept, want once", n)
	}
	if n := databaseErrors(t, reg); n != 0 {
		t.Errorf("%v database errors counted, want none", n)
	}
}

// A running relay cleans up with its Retention: the rows published before it
// go, the younger ones stay (the cleanup runs as a session starts, then
// every CleanupInterval).
func TestRelayDeletesRowsPublishedBeforeTheRetention(t *testing.T) {
	names, _ := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (id, type, source, envelope, published_at)
		SELECT gen_random_uuid(), CASE WHEN i <= 3 THEN 'old' ELSE 'young' END, 'test', '{}',
			CASE WHEN i <= 3 THEN now() - interval '2 hours' ELSE now() - interval '50 minutes' END
		FROM generate_series(1, 5) i`); err != nil {
		t.Fatal(err)
	}
	startRelay(t, ctx, Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names,
		Retention: time.Hour}, nil)
	count := func(typ string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = $1`, typ).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); count("old") != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows published before the retention left after 10 s", count("old"))
		}
	}
	if n := count("young"); n != 2 {
		t.Errorf("%d rows published within the retention left, want 2", n)
	}
}

// A notification retention shorter than the inbox retention is refused at
// start: past the inbox record, the notification's unique event id is what
// keeps a replayed dead letter from notifying and emailing twice.
func TestANotificationRetentionShorterThanTheInboxRetentionIsRefused(t *testing.T) {
	const day = 24 * time.Hour
	dbs := []Database{{Name: "users", URL: "postgres://127.0.0.1/users"}}
	for _, tt := range []struct {
		name                string
		inbox, notification time.Duration
		ok                  bool
	}{
		{"defaults", 0, 0, true},
		{"equal", 60 * day, 60 * day, true},
		{"shorter than the default inbox retention", 0, 10 * day, false},
		{"an inbox retention past the default notification retention", 100 * day, 0, true},
		{"an inbox retention past a notification retention set", 100 * day, 90 * day, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Databases: dbs, InboxRetention: tt.inbox, NotificationRetention: tt.notification},
				slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v; want accepted %v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "notification retention") {
				t.Errorf("the refusal %q does not name the setting", err)
			}
		})
	}
}

// The relay refuses an inbox retention the consumers refuse (not above
// inbox.MaxClockSkew: their window would be empty, or negative), with an
// error naming INBOX_RETENTION; zero is the default. Until 2026-12-06 it
// took any value <= 0 as the default and accepted 5 minutes or less, pruning
// the records of events the consumers would still have accepted, while they
// refused to start.
func TestAnInboxRetentionTheConsumersRefuseIsRefused(t *testing.T) {
	dbs := []Database{{Name: "users", URL: "postgres://127.0.0.1/users"}}
	for _, tt := range []struct {
		name  string
		inbox time.Duration
		ok    bool
	}{
		{"unset: the default", 0, true},
		{"a minute above the clock skew", inbox.MaxClockSkew + time.Minute, true},
		{"the clock skew", inbox.MaxClockSkew, false},
		{"a second", time.Second, false},
		{"negative", -time.Hour, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Databases: dbs, InboxRetention: tt.inbox}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v; want accepted %v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "INBOX_RETENTION") {
				t.Errorf("the refusal %q does not name the setting", err)
			}
		})
	}
}

// A restored outbox (pg_dump of an older cluster, restored into a new one:
// docs/deploy-faasd.md, step 8) keeps its rows' transaction ids, far
// above the new cluster's. The relay took such rows for rows of a running
// transaction and held them until the new cluster had used as many ids. A
// row whose id is at or above the snapshot's xmax can only be such a row:
// it is published; a row committed behind a transaction still running is
// still held.
func TestARestoredRowFromAnOlderClusterIsPublished(t *testing.T) {
	names, deliveries := capture(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names,
		BatchWait: NoBatchWait, PollInterval: 200 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)

	// A transaction still running, older than the event committed below.
	older, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = older.Rollback(ctx) }()
	if _, err := older.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	var behind, restored string
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		behind = insertEvent(t, ctx, tx, "behind")
		restored = insertEvent(t, ctx, tx, "restored")
		// As pg_restore writes it: the old cluster's id, 50 million ahead.
		_, err := tx.Exec(ctx, `UPDATE outbox SET transaction_id = (pg_current_xact_id()::text::bigint + 50000000)::text::xid8
			WHERE id = $1`, restored)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, deliveries, 1, 10*time.Second); got[0].MessageId != restored {
		t.Fatalf("published %s, want the restored row %s", got[0].MessageId, restored)
	}
	noMore(t, deliveries, 600*time.Millisecond) // "behind" waits for the older transaction
	if err := older.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, deliveries, 1, 10*time.Second); got[0].MessageId != behind {
		t.Errorf("published %s, want %s", got[0].MessageId, behind)
	}
	allMarked(t, pool)
}
