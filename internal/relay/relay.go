// Package relay publishes the rows of every service's outbox table to the
// RabbitMQ events exchange. It reads only rows whose transaction is older than
// every transaction still running, publishes them in transaction order with
// publisher confirms and marks a batch published only after RabbitMQ confirmed
// it, so every committed event is delivered at least once (consumers dedupe by
// event id) and a row committed out of order is never skipped.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/notifications/notificationsdb"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
)

// Database is one service database holding an outbox table.
type Database struct {
	// Name labels logs and metrics (users, catalog, orders, …).
	Name string
	// URL is the pgx connection string.
	URL string
	// Password, when set, overrides the URL's password (the relay's own
	// role's, secret PasswordSecret).
	Password string
}

// PasswordSecret is the secret holding the password of the relay's login
// role, shop_relay. It is no service's role: it may connect to every
// service database, but only reads and marks the outbox and deletes the old
// rows of the outbox, processed_events and notifications, what each
// service's migration *_relay_grants.sql grants it (docs/security.md,
// "Database roles").
const PasswordSecret = "db-password-relay"

// Config configures a Relay. Zero values take the documented defaults.
type Config struct {
	// Databases are relayed concurrently, one goroutine each.
	Databases []Database
	// BrokerURL is the RabbitMQ URL (default broker.DefaultURL).
	BrokerURL string
	// Names are the exchange names (empty prefix in production).
	Names broker.Names
	// BatchSize is the number of rows published per confirm round (default
	// 100; twice that while rows restored from another cluster remain: drain).
	BatchSize int
	// ConfirmTimeout bounds a batch's publication, its writes and the wait
	// for RabbitMQ's confirmation of it (default DefaultConfirmTimeout). A
	// batch not written or not confirmed in time is a failed publish: the
	// confirmed prefix is marked published, the other rows stay pending and
	// go again on a new connection (consumers drop a repeat by event id),
	// and the lag metrics are refreshed meanwhile. A quorum queue without a
	// leader may never confirm, and a connection RabbitMQ blocks during a
	// resource alarm is not read, so a large batch's writes wait: without a
	// deadline the worker, and its lag gauges, stopped there, so
	// OutboxLagHigh could not fire.
	ConfirmTimeout time.Duration
	// StatementTimeout bounds each of the relay's database statements, and
	// its connection attempt (default DefaultStatementTimeout): past it the
	// statement is abandoned (a context deadline, which also ends a wait on
	// a half-open connection), the connection closed and the session
	// started again. Without it a statement stuck on a row lock or a dead
	// connection stopped the worker, and its lag gauges, for good.
	StatementTimeout time.Duration
	// BatchWait is how long a relay woken by a NOTIFY waits before it reads,
	// so that the rows of the transactions that commit meanwhile go in the
	// same batch: one read, one confirm round and one mark for all of them
	// instead of one each (default DefaultBatchWait; NoBatchWait reads at
	// once). Every event's lag grows by up to this much.
	BatchWait time.Duration
	// PollInterval is the fallback when no NOTIFY arrives, and the longest
	// the lag metrics go without a refresh while events flow (default 1 s).
	PollInterval time.Duration
	// Retention is how long published rows are kept (default 7 days).
	Retention time.Duration
	// InboxRetention is how long consumers' processed-event records
	// (internal/inbox), and the catalog's settled sales
	// (catalogdb.PruneOrderSales), are kept in the same databases (default
	// inbox.DefaultRetention, 30 days, INBOX_RETENTION): the consumers, reading
	// the same setting, refuse an event older than that (inbox.Events), whose
	// record may be gone and which would be processed again. Where a
	// consumer of a database recorded a longer retention of its own
	// (inbox.RecordRetention), that database is pruned with the longest
	// (and its notifications kept at least as long), and a warning says so.
	// Zero means the default; Validate refuses any other value not above
	// inbox.MaxClockSkew, as the consumers do.
	InboxRetention time.Duration
	// NotificationRetention is how long the users database's notifications
	// (internal/notifications/notificationsdb) are kept at least (default 90
	// days, or InboxRetention when that is longer). It must be at least
	// InboxRetention: a notification's unique event id is what keeps a
	// replayed dead letter whose inbox record was pruned from notifying, and
	// emailing, twice. Validate refuses a shorter one. Set or not, each
	// cleanup keeps them as long as the database's inbox retention when that
	// is longer (a consumer's recorded one, inboxRetention), and logs once
	// per value at info that it does.
	NotificationRetention time.Duration
	// CleanupInterval is how often old published rows are deleted (default 10 min).
	CleanupInterval time.Duration
	// MaxBackoff caps the delay between reconnect attempts (default 10 s).
	MaxBackoff time.Duration
	// CreatedOnDemand says each database is created by its service's first
	// request (DATABASE_CREATE=true, a developer machine): a database that
	// does not exist yet is then awaited quietly. Otherwise (production,
	// where the databases exist before the functions) it is an error like
	// any other: counted, logged and alerted on.
	CreatedOnDemand bool
	// Signer signs every event body (events.SignatureHeader), so consumers
	// can refuse events that did not come through the relay. nil publishes
	// unsigned events (tests of the relay alone); connectors/outbox-relay
	// always sets it.
	Signer *events.Signer
}

// DefaultBatchWait is Config.BatchWait's default: at a hundred orders a
// second it puts about two orders' events in each batch, and it is a small
// part of the second the event lag is allowed (docs/performance.md, item 33).
const DefaultBatchWait = 10 * time.Millisecond

// DefaultNotificationRetention is Config.NotificationRetention's default: a
// user's notifications list shows the last 90 days.
const DefaultNotificationRetention = 90 * 24 * time.Hour

// DefaultConfirmTimeout is Config.ConfirmTimeout's default: far above a
// healthy confirm round (milliseconds), and short enough that a stalled
// broker shows in the lag gauges well within OutboxLagHigh's minute.
const DefaultConfirmTimeout = 15 * time.Second

// DefaultStatementTimeout is Config.StatementTimeout's default. A batch's
// statements take milliseconds (a read of at most BatchSize rows through
// the pending index, twice that while restored rows remain, a mark by keys, a delete of at most 5,000 rows), and
// the lag's count(*) well under a second even over a million pending rows:
// 30 s is far above any of them on a loaded server, so a slow statement is
// never cut short, while a stuck one is abandoned, and the lag measured
// again, well within the 120 s after which OutboxLagHigh takes the lag for
// unmeasured (shop_outbox_last_observed_timestamp_seconds): a lock held for
// a moment does not page, one that lasts does.
const DefaultStatementTimeout = 30 * time.Second

// NoBatchWait as Config.BatchWait reads as soon as a NOTIFY arrives.
const NoBatchWait time.Duration = -1

func (c *Config) setDefaults() {
	if c.BrokerURL == "" {
		c.BrokerURL = broker.DefaultURL
	}
	if c.BatchWait == 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.ConfirmTimeout <= 0 {
		c.ConfirmTimeout = DefaultConfirmTimeout
	}
	if c.StatementTimeout <= 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.InboxRetention == 0 {
		c.InboxRetention = inbox.DefaultRetention
	}
	if c.NotificationRetention <= 0 {
		// Unset, it is never shorter than the inbox retention: a deployment
		// that kept processed events longer than 90 days keeps starting.
		c.NotificationRetention = max(DefaultNotificationRetention, c.InboxRetention)
	}
	if c.CleanupInterval <= 0 {
		c.CleanupInterval = 10 * time.Minute
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
}

// Validate reports every configuration problem.
func (c Config) Validate() error {
	var errs []error
	if len(c.Databases) == 0 {
		errs = append(errs, errors.New("relay: no database configured"))
	}
	for _, d := range c.Databases {
		if d.Name == "" || d.URL == "" {
			errs = append(errs, fmt.Errorf("relay: database %q needs a name and a URL", d.Name))
		}
	}
	if err := inbox.CheckRetention(c.InboxRetention); err != nil {
		// The consumers refuse to start with it (inbox.EventsConfig.Events).
		errs = append(errs, fmt.Errorf("relay: INBOX_RETENTION: %w", err))
	}
	if c.NotificationRetention < c.InboxRetention {
		errs = append(errs, fmt.Errorf("relay: the notification retention (%s) must be at least the inbox retention (%s): "+
			"a dead letter replayed after its notification was pruned would notify, and email, twice",
			c.NotificationRetention, c.InboxRetention))
	}
	return errors.Join(errs...)
}

// Relay moves outbox rows to RabbitMQ. Build it with New and call Run.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// beforeMark, when set (tests), runs after a batch was confirmed and
	// before it is marked published.
	beforeMark func(ctx context.Context, database string, ids []string)
	// tracer, when set (tests), sees every query of every database session.
	tracer pgx.QueryTracer
	// heldReads counts the reads that found rows held back (see drain), for
	// tests: the reads that follow them are not a batch's own.
	heldReads atomic.Int64
}

type metrics struct {
	pending   *prometheus.GaugeVec
	oldestAge *prometheus.GaugeVec
	observed  *prometheus.GaugeVec
	published *prometheus.CounterVec
	errors    *prometheus.CounterVec
}

// New builds a relay whose lag metrics are registered on reg.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Relay, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &metrics{
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shop_outbox_pending_events", Help: "Outbox rows not yet published, per database.",
		}, []string{"database"}),
		oldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shop_outbox_oldest_pending_age_seconds", Help: "Age of the oldest unpublished outbox row (0 when none).",
		}, []string{"database"}),
		observed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shop_outbox_last_observed_timestamp_seconds",
			Help: "Unix time shop_outbox_pending_events and shop_outbox_oldest_pending_age_seconds were last measured (the relay's start until the first time): they keep their last value while the relay cannot use the database.",
		}, []string{"database"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_outbox_published_total", Help: "Outbox rows published and confirmed by RabbitMQ.",
		}, []string{"database"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_outbox_relay_errors_total", Help: "Relay errors by database and side (database, broker).",
		}, []string{"database", "side"}),
	}
	for _, c := range []prometheus.Collector{m.pending, m.oldestAge, m.observed, m.published, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("relay metrics: %w", err)
		}
	}
	// Every database's counters exist from the start (0 until something
	// happens), so an alert on their rate reads 0, not "no data"; so does
	// its last observation, at the relay's start, so a database the relay
	// never manages to read goes stale like one it stopped reading
	// (OutboxLagHigh), instead of having no series.
	now := float64(time.Now().UnixNano()) / 1e9
	for _, db := range cfg.Databases {
		m.published.WithLabelValues(db.Name)
		m.errors.WithLabelValues(db.Name, "database")
		m.errors.WithLabelValues(db.Name, "broker")
		m.observed.WithLabelValues(db.Name).Set(now)
	}
	return &Relay{cfg: cfg, log: log, metrics: m}, nil
}

// Run relays every database until ctx ends. Transient failures (a database
// or the broker down) are logged and retried with backoff; Run never returns
// early because of them.
func (r *Relay) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, db := range r.cfg.Databases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{relay: r, db: db, log: r.log.With("database", db.Name)}
			w.run(ctx)
		}()
	}
	wg.Wait()
}

type worker struct {
	relay       *Relay
	db          Database
	log         *slog.Logger
	pub         publisher
	lastCleanup time.Time
	lastObserve time.Time
	// salesKeptTold: the catalog's settled sales could not be pruned, and
	// this worker said so (catalogdb.ErrSalesKept).
	salesKeptTold bool
	// retentionsTold: the consumers' recorded inbox retentions longer than
	// the relay's this worker warned of, by consumer; retentionsUnreadableTold:
	// it said it may not read them (inboxRetention).
	retentionsTold           map[string]time.Duration
	retentionsUnreadableTold bool
	// notificationsKeptTold: the notification retention longer than
	// Config.NotificationRetention this worker last told of
	// (tellNotificationsKept), or zero.
	notificationsKeptTold time.Duration
}

// errDatabase marks a failure that needs a new database connection.
type errDatabase struct{ err error }

func (e errDatabase) Error() string { return e.err.Error() }
func (e errDatabase) Unwrap() error { return e.err }

func (w *worker) run(ctx context.Context) {
	defer w.pub.close()
	bo := broker.Backoff{Max: w.relay.cfg.MaxBackoff}
	// A database not created yet is looked for every missingDatabasePoll,
	// not backed off from as from an outage: the first checkout after make
	// run creates it, and its events would wait for the next try, up to
	// MaxBackoff later.
	poll := broker.Backoff{Min: missingDatabasePoll, Max: missingDatabasePollMax}
	waiting := false // told once that the database does not exist yet
	for ctx.Err() == nil {
		err := w.session(ctx, &bo)
		if ctx.Err() != nil {
			return
		}
		wait := &bo
		switch {
		case w.relay.cfg.CreatedOnDemand && missingDatabase(err):
			// The service's functions create their database on their first
			// request (postgres.Open): after make run, payments has none
			// before the first checkout. Nothing is wrong and nothing is
			// pending, so it is neither an error nor worth a line per retry.
			if !waiting {
				w.log.Info("outbox database not created yet: waiting for its service's first request", "err", err)
			}
			waiting, wait = true, &poll
			// A database that does not exist has nothing pending: that is
			// a measurement too, and a fresh stack's alerts stay quiet.
			w.measured(0, 0)
		default:
			waiting = false
			w.relay.metrics.errors.WithLabelValues(w.db.Name, "database").Inc()
			w.log.Warn("outbox database unavailable, retrying", "err", err)
		}
		if !wait.Wait(ctx) {
			return
		}
	}
}

// missingDatabasePoll and missingDatabasePollMax are how often a database
// not created yet is looked for (Config.CreatedOnDemand): first every
// 500 ms, then every 2 s at most. Each try is one connection attempt,
// refused at once, and one FATAL line in PostgreSQL's log: polling every
// 500 ms for good made ten a second for a fresh stack's five databases. A
// test shortens them.
var missingDatabasePoll, missingDatabasePollMax = 500 * time.Millisecond, 2 * time.Second

// missingDatabase reports whether err is PostgreSQL's invalid_catalog_name
// (3D000): the database does not exist.
func missingDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "3D000"
}

// session serves one database connection; it returns on a database error.
func (w *worker) session(ctx context.Context, bo *broker.Backoff) error {
	cc, err := pgx.ParseConfig(w.db.URL)
	if err != nil {
		return err
	}
	if w.db.Password != "" {
		cc.Password = w.db.Password
	}
	if w.relay.tracer != nil {
		cc.Tracer = w.relay.tracer
	}
	// The session's commits — marking rows published, deleting old ones —
	// need not wait for the WAL to reach the disk. A mark lost in a crash of
	// PostgreSQL leaves its rows pending, and they are published again:
	// delivery is at least once whatever the relay does, and every handler's
	// inbox drops a repeat. Nothing is lost: the outbox rows themselves were
	// committed synchronously by the services that wrote them.
	cc.RuntimeParams["synchronous_commit"] = "off"
	// The server also cancels a statement past StatementTimeout itself.
	// pgx sends a cancel request for a statement it abandons, but on a
	// connection of its own, which may not get through (the network that
	// broke the session): a statement waiting on a lock would then wait on
	// in the server, one more with every new session.
	cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(w.relay.cfg.StatementTimeout.Milliseconds(), 10)
	cctx, cancel := context.WithTimeout(ctx, w.relay.cfg.StatementTimeout)
	conn, err := pgx.ConnectConfig(cctx, cc)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := w.bounded(conn).Exec(ctx, "LISTEN "+outbox.Channel); err != nil {
		return err
	}
	w.log.Info("relaying outbox")
	brokerBackoff := broker.Backoff{Max: w.relay.cfg.MaxBackoff}
	heldWait := firstHeldWait
	for ctx.Err() == nil {
		got, err := w.drain(ctx, conn)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.As(err, new(errDatabase)) {
				return err
			}
			w.relay.metrics.errors.WithLabelValues(w.db.Name, "broker").Inc()
			w.log.Warn("publishing failed, rows stay pending", withAMQPError([]any{"err", err}, err)...)
			w.pub.close()
			if err := w.observe(ctx, conn); err != nil {
				return err
			}
			if !brokerBackoff.Wait(ctx) {
				return nil
			}
			continue
		}
		bo.Reset()
		brokerBackoff.Reset()
		// The lag metrics are refreshed at most once per PollInterval
		// (their count(*) was a third of the queries of every wakeup); an
		// idle relay still refreshes them after each poll.
		if time.Since(w.lastObserve) >= w.relay.cfg.PollInterval {
			if err := w.observe(ctx, conn); err != nil {
				return err
			}
		}
		if err := w.cleanup(ctx, conn); err != nil {
			return err
		}
		if got.more {
			continue
		}
		// The notifications received while draining (during its queries)
		// all came before its last query ended: one read after them covers
		// every one, where waiting for each in turn made a read each.
		notified := skipNotifications(conn)
		if !notified {
			// Rows held back go out once the transaction they wait for
			// ends, which may notify nobody here: read again soon, and
			// less often while reads find rows held and publish none.
			wait := w.relay.cfg.PollInterval
			if !got.held || got.published {
				heldWait = firstHeldWait
			}
			if got.held {
				wait, heldWait = min(heldWait, wait), min(2*heldWait, wait)
			}
			wctx, cancel := context.WithTimeout(ctx, wait)
			_, err = conn.WaitForNotification(wctx)
			timedOut := wctx.Err() != nil
			cancel()
			if err != nil && !timedOut {
				return err
			}
			notified = !timedOut
		}
		if notified && w.relay.cfg.BatchWait > 0 {
			// Woken by a commit: let the commits right behind it land too.
			t := time.NewTimer(w.relay.cfg.BatchWait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
	return nil
}

// firstHeldWait is how soon the relay reads again after a read that found
// rows held back (drain), doubling up to PollInterval while they stay held.
const firstHeldWait = 5 * time.Millisecond

// alreadyDone is a context that is done from the start (skipNotifications).
var alreadyDone = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// skipNotifications drops every notification conn has already received and
// reports whether there was one. It never waits: those still on the socket
// stay there for the next wait.
func skipNotifications(conn *pgx.Conn) bool {
	got := false
	for {
		// With a context already done, WaitForNotification hands over a
		// notification already received, or returns at once without
		// touching the connection.
		n, _ := conn.WaitForNotification(alreadyDone)
		if n == nil {
			return got
		}
		got = true
	}
}

type pending struct {
	seq      int64
	id       string
	typ      string
	envelope []byte
}

// heldBack is the seq of the marker row drain's read adds when rows are held
// back (real seqs start at 1).
const heldBack = -1

// drained is what one drain did.
type drained struct {
	more      bool // a full batch was read: more rows may be waiting
	held      bool // rows were held back (see drain)
	published bool // the batch had rows, all published
}

// drain publishes one batch and reports what it did, held among it: rows
// committed, but by a transaction that began after one still running
// anywhere in the cluster. That older transaction may yet commit an event
// of its own, which must go out first (outbox order), so such rows wait for
// the next read; the commit that ends it wakes the relay only if it writes
// to this outbox, so the caller reads again soon rather than at the next
// poll.
func (w *worker) drain(ctx context.Context, conn *pgx.Conn) (drained, error) {
	cfg := w.relay.cfg
	// All three parts read the statement's snapshot (pg_current_snapshot is
	// the active one); the first two are range scans of outbox_pending in
	// its order (EXPLAIN, a generic plan as the custom one). The first takes
	// rows restored from another cluster (pg_dump keeps transaction_id as
	// data: docs/deploy-faasd.md, step 8): an id at or above the
	// snapshot's xmax is no transaction of this cluster that could still
	// commit (a row the snapshot sees was committed by one below xmax), so
	// such rows are not held; they go out first, in their own cluster's
	// order, since they were written before anything of this cluster
	// (restored ids this cluster has reached already cannot be told from
	// its own: they go with the second part or are held). The
	// second takes this cluster's rows below the horizon, in transaction
	// order. The third is one probe of the rows held back, from the horizon
	// up to xmax. Its marker row is told by its seq wherever it comes: the
	// other parts' rows keep their order (each LIMIT subquery runs whole in
	// one process, as any child of an Append, and the children run in turn).
	// A batch is thus at most twice BatchSize, and only while restored rows
	// remain.
	rctx, endRead := context.WithTimeout(ctx, cfg.StatementTimeout)
	defer endRead()
	rows, err := conn.Query(rctx, `(SELECT seq, id::text, type, envelope::text FROM outbox
			WHERE published_at IS NULL AND transaction_id >= pg_snapshot_xmax(pg_current_snapshot())
			ORDER BY transaction_id, seq LIMIT $1)
		UNION ALL
		(SELECT seq, id::text, type, envelope::text FROM outbox
			WHERE published_at IS NULL AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY transaction_id, seq LIMIT $1)
		UNION ALL
		(SELECT -1, '', '', '' FROM outbox
			WHERE published_at IS NULL AND transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
				AND transaction_id < pg_snapshot_xmax(pg_current_snapshot()) LIMIT 1)`, cfg.BatchSize)
	if err != nil {
		return drained{}, errDatabase{fmt.Errorf("read outbox: %w", err)}
	}
	read, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pending, error) {
		var p pending
		var env string
		err := row.Scan(&p.seq, &p.id, &p.typ, &env)
		p.envelope = []byte(env)
		return p, err
	})
	if err != nil {
		return drained{}, errDatabase{fmt.Errorf("read outbox: %w", err)}
	}
	batch := slices.DeleteFunc(read, func(p pending) bool { return p.seq == heldBack })
	held := len(batch) < len(read)
	if held {
		w.relay.heldReads.Add(1)
	}
	if len(batch) == 0 {
		return drained{held: held}, nil
	}
	ch, err := w.pub.channel(ctx, cfg.BrokerURL, cfg.Names, 2*cfg.BatchSize, w.log)
	if err != nil {
		return drained{held: held}, err
	}
	// One deadline, ConfirmTimeout, bounds the batch's writes and the wait
	// for its confirmations. A write waits as long as the broker does not
	// read the connection: RabbitMQ stops reading a publishing connection
	// it blocks during a resource alarm, and a batch larger than the
	// sockets' buffers then waits in the client's write, which has no
	// deadline and does not look at its context. At the deadline the
	// connection is therefore closed under the write (a close with a
	// deadline already past fails the write at once): the batch is a failed
	// publish, as an unconfirmed one, and goes again on a new connection.
	// Until 2026-12-07 the deadline started after the last write, and a
	// write the broker did not read waited until the alarm cleared.
	bctx, cancel := context.WithTimeout(ctx, cfg.ConfirmTimeout)
	defer cancel()
	pubConn, pubBlocked := w.pub.conn, w.pub.blocked
	stopAbort := context.AfterFunc(bctx, func() { _ = pubConn.CloseDeadline(time.Now()) })
	notWritten := func() error { return errNotWritten(cfg.ConfirmTimeout, pubBlocked.Load()) }
	confirms := make([]*amqp.DeferredConfirmation, 0, len(batch))
	spans := make([]trace.Span, 0, len(batch))
	defer func() {
		for _, span := range spans {
			span.End() // ended spans ignore this
		}
	}()
	// fail marks the spans of the events from i on, published and not
	// confirmed (or nacked, or after a nacked one): their rows stay pending
	// and are published again.
	fail := func(i int, err error, status string) {
		for _, span := range spans[i:] {
			span.RecordError(err)
			span.SetStatus(codes.Error, status)
		}
	}
	for _, p := range batch {
		msg := message(p, cfg.Signer)
		spans = append(spans, w.publishSpan(ctx, cfg.Names.Exchange(), p, msg))
		// Mandatory: an event no queue takes, not even shop.unrouted (the
		// alternate exchange's queue deleted), comes back (returned below)
		// instead of being confirmed and dropped.
		dc, err := ch.PublishWithDeferredConfirmWithContext(bctx, cfg.Names.Exchange(), p.typ, true, false, msg)
		if err != nil {
			switch {
			case ctx.Err() == nil && bctx.Err() != nil:
				err = notWritten()
			case ctx.Err() == nil && ch.IsClosed():
				// The client's own "channel/connection is not open"
				// (504) says nothing of why: the close's reason does.
				err = w.pub.closedErr(pubConn, "")
			}
			err = fmt.Errorf("publish %s: %w", p.id, err)
			fail(0, err, "not published")
			return drained{held: held}, err
		}
		confirms = append(confirms, dc)
	}
	if !stopAbort() {
		// The deadline came as the last write ended: the connection is
		// closed, and no confirmation will come.
		err := ctx.Err()
		if err == nil {
			err = notWritten()
		}
		err = fmt.Errorf("publish: %w", err)
		fail(0, err, "not published")
		return drained{held: held}, err
	}
	// Mark only the confirmed prefix: a nacked or unconfirmed row and
	// everything after it are published again in order next round.
	var seqs []int64
	var ids []string
	var confirmErr error
	for i, dc := range confirms {
		ok, err := dc.WaitContext(bctx)
		if err != nil {
			if ctx.Err() != nil {
				return drained{held: held}, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no confirmation from the broker within %s", cfg.ConfirmTimeout)
			}
			confirmErr = fmt.Errorf("confirm %s: %w", batch[i].id, err)
			fail(i, confirmErr, "not confirmed")
			break
		}
		if !ok && ch.IsClosed() {
			// The client ends every confirmation still awaited as a nack
			// when the channel closes (its connection lost, or the channel
			// closed by the broker), which it marks closed first: no
			// refusal of the broker's, and no confirmation can come now.
			confirmErr = fmt.Errorf("confirm %s: %w", batch[i].id, w.pub.closedErr(pubConn, " before its confirmation"))
			fail(i, confirmErr, "not confirmed")
			break
		}
		if !ok {
			// The nacked event and every one after it stay pending and
			// are published again: all their spans fail.
			confirmErr = fmt.Errorf("broker nacked event %s", batch[i].id)
			fail(i+1, confirmErr, "an earlier event was nacked")
			spans[i].RecordError(confirmErr)
			spans[i].SetStatus(codes.Error, "nacked")
			break
		}
		seqs = append(seqs, batch[i].seq)
		ids = append(ids, batch[i].id)
	}
	// RabbitMQ sends a mandatory message's return before its confirmation,
	// and the client hands them over in that order: every return of the
	// confirmed prefix is already in w.pub.returns. A returned event and
	// every one after it stay pending; the error closes the connection, and
	// the next one declares shop.unrouted again. A lost connection closes
	// the returns channel (its returns already read): the read stops there,
	// where a closed channel would answer empty returns for ever.
	for done := false; !done; {
		select {
		case r, open := <-w.pub.returns:
			if !open {
				done = true
				break
			}
			if i := slices.Index(ids, r.MessageId); i >= 0 {
				confirmErr = fmt.Errorf("the broker returned event %s: no queue took it, not even %s (%d %s)",
					r.MessageId, cfg.Names.Unrouted(), r.ReplyCode, r.ReplyText)
				fail(i, confirmErr, "returned, or after a returned event")
				seqs, ids = seqs[:i], ids[:i]
			}
		default:
			done = true
		}
	}
	if len(seqs) > 0 {
		if w.relay.beforeMark != nil {
			w.relay.beforeMark(ctx, w.db.Name, ids)
		}
		// The mark is planned for its keys every time (an unnamed statement,
		// QueryExecModeExec), never from a plan PostgreSQL cached on this
		// session. The session lives from an empty outbox to a week of rows
		// (Retention); after five executions PostgreSQL may keep one generic
		// plan, and for a batch of keys in a table of a few pages that is a
		// scan of the table, which it then kept until the table was analyzed
		// again: on a server whose autovacuum does not (this project's test
		// machines run with it off), for every batch ever after
		// (docs/performance.md, item 34). The read keeps its cached plan,
		// the index scan of outbox_pending in order: planned afresh, it
		// estimated a bitmap scan and a sort, which visits the heap page of
		// every dead entry of that index where the index scan learns to skip
		// them.
		if _, err := w.bounded(conn).Exec(ctx, `UPDATE outbox SET published_at = now() WHERE seq = ANY($1)`,
			pgx.QueryExecModeExec, seqs); err != nil {
			return drained{held: held}, errDatabase{fmt.Errorf("mark published: %w", err)}
		}
		w.relay.metrics.published.WithLabelValues(w.db.Name).Add(float64(len(seqs)))
		w.log.Debug("published outbox batch", "count", len(seqs))
	}
	if confirmErr != nil {
		return drained{held: held}, confirmErr
	}
	if !w.pub.blocked.Load() {
		// A whole batch confirmed on a connection the broker does not
		// block: an alarm told of is over.
		w.pub.tellAlarmOver(w.log)
	}
	return drained{more: len(batch) >= cfg.BatchSize, held: held, published: true}, nil
}

// tracerScope is the instrumentation scope of the publishes' spans: this
// package's import path, as every span's scope is (docs/observability.md).
const tracerScope = "github.com/shopfaas/shop/internal/relay"

// publishSpan starts the producer span of one event's publication ("publish
// <event type>", messaging semantic conventions: messaging.system rabbitmq,
// messaging.operation.type send, the exchange as destination, the event type
// as routing key), a child of the span that wrote the event, and puts its trace context in msg's headers
// so the connector's delivery (and then the handler) hang under it. Without a
// tracer provider it is a no-op span carrying the writer's context.
func (w *worker) publishSpan(ctx context.Context, exchange string, p pending, msg amqp.Publishing) trace.Span {
	carrier := propagation.MapCarrier{}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v, ok := msg.Headers[k].(string); ok {
			carrier[k] = v
		}
	}
	prop := otel.GetTextMapPropagator()
	pctx, span := otel.Tracer(tracerScope).Start(prop.Extract(ctx, carrier), "publish "+p.typ,
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ, semconv.MessagingOperationTypeSend, semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(exchange), semconv.MessagingRabbitMQDestinationRoutingKey(p.typ),
			semconv.MessagingMessageID(p.id), semconv.DBNamespace(w.db.Name)))
	out := propagation.MapCarrier{}
	prop.Inject(pctx, out)
	for k, v := range out {
		msg.Headers[k] = v
	}
	return span
}

// message builds the persistent AMQP message of an outbox row, copying the
// envelope's trace context into headers for consumers that read headers and
// adding the signature of its body when signer is set.
func message(p pending, signer *events.Signer) amqp.Publishing {
	var trace struct {
		Time        time.Time `json:"time"`
		TraceParent string    `json:"traceparent"`
		TraceState  string    `json:"tracestate"`
	}
	_ = json.Unmarshal(p.envelope, &trace) // a malformed envelope is still delivered as is
	headers := amqp.Table{}
	if trace.TraceParent != "" {
		headers["traceparent"] = trace.TraceParent
	}
	if trace.TraceState != "" {
		headers["tracestate"] = trace.TraceState
	}
	if signer != nil {
		headers[strings.ToLower(events.SignatureHeader)] = signer.Sign(p.envelope)
	}
	return amqp.Publishing{
		Headers:      headers,
		ContentType:  broker.ContentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    p.id,
		Type:         p.typ,
		Timestamp:    trace.Time,
		AppId:        "outbox-relay",
		Body:         p.envelope,
	}
}

// observe refreshes the lag metrics (shop_outbox_pending_events,
// shop_outbox_oldest_pending_age_seconds and, when both were measured,
// shop_outbox_last_observed_timestamp_seconds). Only a working session
// refreshes them: while the relay cannot use the database they keep their
// last value, and the timestamp tells how old it is.
func (w *worker) observe(ctx context.Context, conn *pgx.Conn) error {
	var n int64
	var age float64
	err := w.bounded(conn).QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
		FROM outbox WHERE published_at IS NULL`).Scan(&n, &age)
	if err != nil {
		return errDatabase{fmt.Errorf("outbox lag: %w", err)}
	}
	w.measured(n, age)
	return nil
}

// measured sets the lag metrics to n pending rows, the oldest age seconds
// old, measured now.
func (w *worker) measured(n int64, age float64) {
	now := time.Now()
	w.relay.metrics.pending.WithLabelValues(w.db.Name).Set(float64(n))
	w.relay.metrics.oldestAge.WithLabelValues(w.db.Name).Set(age)
	w.relay.metrics.observed.WithLabelValues(w.db.Name).Set(float64(now.UnixNano()) / 1e9)
	w.lastObserve = now
}

// bounded is conn with each statement under its own StatementTimeout.
func (w *worker) bounded(conn *pgx.Conn) boundedConn {
	return boundedConn{conn: conn, timeout: w.relay.cfg.StatementTimeout}
}

// boundedConn runs each statement on conn with a deadline of its own
// (Config.StatementTimeout), for the relay's own statements and for those
// of the shared cleanups (postgres.Querier), several statements each: one
// deadline for all of them would cut a long cleanup short.
type boundedConn struct {
	conn    *pgx.Conn
	timeout time.Duration
}

func (b boundedConn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.conn.Exec(ctx, sql, args...)
}

func (b boundedConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	return boundedRow{row: b.conn.QueryRow(ctx, sql, args...), cancel: cancel}
}

// boundedRow ends its statement's deadline once it is scanned.
type boundedRow struct {
	row    pgx.Row
	cancel context.CancelFunc
}

func (r boundedRow) Scan(dest ...any) error {
	defer r.cancel()
	return r.row.Scan(dest...)
}

// cleanup deletes published rows older than the retention, processed-event
// records and settled sales older than the inbox retention (the longest of
// the relay's and of the database's consumers', inboxRetention) and, in the
// users database, notifications older than the notification retention (or
// that inbox retention, when longer), at most once per CleanupInterval, or
// cleanupCatchUp after a cleanup that stopped at one of its caps.
//
// A try counts whether it finishes or not: a cleanup that fails is tried
// again only after CleanupInterval. One cut short by the server at the
// session's statement_timeout (a delete waiting on a row lock, a walk over
// a large backlog of old rows) is logged, counted as a database error and
// leaves the session publishing: its statements are given a client
// deadline cleanupGrace longer than the server's, so it is the server that
// cancels them and the connection stays usable. A timed-out cleanup that
// ended the session was run again right after the next session's drain:
// publishing stalled StatementTimeout per cycle and the backlog never
// shrank.
func (w *worker) cleanup(ctx context.Context, conn *pgx.Conn) error {
	cfg := w.relay.cfg
	if time.Since(w.lastCleanup) < cfg.CleanupInterval {
		return nil
	}
	w.lastCleanup = time.Now()
	db := boundedConn{conn: conn, timeout: cfg.StatementTimeout + cleanupGrace}
	// A step cut short goes on to the next: an outbox too big to walk in
	// time must not leave the inbox and the notifications unpruned too.
	cut := false
	deleted, more, err := prune(ctx, db, cfg.Retention)
	if err != nil {
		if err := w.cleanupFailed(ctx, conn, fmt.Errorf("outbox cleanup: %w", err), &cut); err != nil {
			return err
		}
	}
	retention, err := w.inboxRetention(ctx, db)
	if err != nil {
		// Without the consumers' retentions nothing they may still need
		// is pruned: the rest waits for the next cleanup.
		if err := w.cleanupFailed(ctx, conn, err, &cut); err != nil {
			return err
		}
		if deleted > 0 {
			w.log.Info("deleted old rows", "outbox", deleted)
		}
		return nil
	}
	pruned, err := inbox.Prune(ctx, db, retention, w.log)
	if err != nil {
		if err := w.cleanupFailed(ctx, conn, err, &cut); err != nil {
			return err
		}
	}
	keep := max(cfg.NotificationRetention, retention)
	w.tellNotificationsKept(ctx, db, keep)
	notified, err := notificationsdb.Prune(ctx, db, keep)
	if err != nil {
		if err := w.cleanupFailed(ctx, conn, err, &cut); err != nil {
			return err
		}
	}
	settled, err := catalogdb.PruneOrderSales(ctx, db, retention)
	switch {
	case errors.Is(err, catalogdb.ErrSalesKept):
		// Told once per worker: a rollout's concurrent index build, or a
		// grant still missing, which split-roles.sh gives.
		if !w.salesKeptTold {
			w.salesKeptTold = true
			w.log.Warn("order sales not pruned", "err", err)
		}
	case err != nil:
		if err := w.cleanupFailed(ctx, conn, err, &cut); err != nil {
			return err
		}
	}
	if deleted > 0 || pruned > 0 || notified > 0 || settled > 0 {
		w.log.Info("deleted old rows", "outbox", deleted, "processed_events", pruned, "notifications", notified, "order_sales", settled)
	}
	// A step that stopped at its cap may have left old rows: the next
	// cleanup comes cleanupCatchUp later instead of CleanupInterval, so a
	// backlog, or a rate above what one capped cleanup per interval deletes
	// (100,000 records each 10 min, about 167 a second), is caught up with
	// while each cleanup still holds publishing up only for its cap. Not
	// after a cleanup cut short (cut): a step that times out would then
	// stall publishing for its statement timeout every cleanupCatchUp; a
	// failed cleanup is tried again only after CleanupInterval.
	if !cut && (more || pruned >= inbox.PruneBatches*postgres.DeleteBatch ||
		notified >= notificationsdb.PruneBatches*postgres.DeleteBatch ||
		settled >= catalogdb.PruneSalesBatches*postgres.DeleteBatch) {
		w.lastCleanup = time.Now().Add(min(cleanupCatchUp, cfg.CleanupInterval) - cfg.CleanupInterval)
	}
	return nil
}

// cleanupCatchUp is how soon the next cleanup comes after one that stopped
// at a cap (cleanup).
const cleanupCatchUp = 10 * time.Second

// inboxRetention is the inbox retention this cleanup of the database prunes
// with: the greatest of the relay's own (Config.InboxRetention) and of every
// consumer's of the database, as each recorded it as it was built
// (inbox.RecordRetention). A consumer whose INBOX_RETENTION is longer than
// the relay's still accepts an event (a dead letter replayed, a captured
// event) whose record the relay's own retention would have pruned: it would
// be applied twice. Such a consumer is warned of once per consumer and value.
// Where the relay may not read the consumers' retentions (a database whose
// grant split-roles.sh has not given yet) it says so once and prunes with its
// own, as before, counting no error; any other failure is returned.
func (w *worker) inboxRetention(ctx context.Context, db postgres.Querier) (time.Duration, error) {
	own := w.relay.cfg.InboxRetention
	recorded, err := inbox.RecordedRetentions(ctx, db)
	switch {
	case errors.Is(err, inbox.ErrRetentionsUnreadable):
		if !w.retentionsUnreadableTold {
			w.retentionsUnreadableTold = true
			w.log.Warn("consumers' inbox retentions not read: pruning with the relay's own", "err", err, "inbox_retention", own)
		}
		return own, nil
	case err != nil:
		return 0, err
	}
	retention := own
	for _, r := range recorded {
		if r.Retention <= own {
			continue
		}
		retention = max(retention, r.Retention)
		if told, ok := w.retentionsTold[r.Consumer]; !ok || told != r.Retention {
			if w.retentionsTold == nil {
				w.retentionsTold = map[string]time.Duration{}
			}
			w.retentionsTold[r.Consumer] = r.Retention
			w.log.Warn("a consumer keeps events longer than the relay's INBOX_RETENTION: pruning with the consumer's",
				"consumer", r.Consumer, "consumer_retention", r.Retention, "inbox_retention", own)
		}
	}
	return retention, nil
}

// tellNotificationsKept logs, once per value, that the notifications of the
// database are kept for keep, longer than Config.NotificationRetention (a
// consumer of the users database recorded a longer inbox retention,
// inboxRetention: a notification's unique event id must outlive the record
// of its event). Nothing is said of a database without notifications; a
// failure to tell is tried again at the next cleanup.
func (w *worker) tellNotificationsKept(ctx context.Context, db postgres.Querier, keep time.Duration) {
	configured := w.relay.cfg.NotificationRetention
	if keep <= configured {
		w.notificationsKeptTold = 0
		return
	}
	if w.notificationsKeptTold == keep {
		return
	}
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('notifications') IS NOT NULL`).Scan(&exists); err != nil {
		return
	}
	w.notificationsKeptTold = keep
	if exists {
		w.log.Info("notifications kept longer than NOTIFICATION_RETENTION: a consumer's recorded inbox retention is longer",
			"notification_retention", configured, "applied", keep)
	}
}

// cleanupGrace is how much longer than the server's statement_timeout a
// cleanup statement's client deadline is, so that the server cancels a
// slow one (the session goes on) before pgx abandons it (which closes the
// connection).
const cleanupGrace = 5 * time.Second

// cleanupFailed handles a cleanup step's error: one the server cut short at
// statement_timeout (query_canceled, 57014) on a connection still open is
// logged, and counted once per cleanup (cut), and the session goes on; any
// other ends it.
func (w *worker) cleanupFailed(ctx context.Context, conn *pgx.Conn, err error, cut *bool) error {
	var pgErr *pgconn.PgError
	if ctx.Err() == nil && errors.As(err, &pgErr) && pgErr.Code == "57014" && !conn.IsClosed() {
		if !*cut {
			w.relay.metrics.errors.WithLabelValues(w.db.Name, "database").Inc()
		}
		*cut = true
		w.log.Warn("cleanup cut short at the statement deadline, tried again after the cleanup interval",
			"err", err, "statement_timeout", w.relay.cfg.StatementTimeout, "cleanup_interval", w.relay.cfg.CleanupInterval)
		return nil
	}
	return errDatabase{err}
}

// prune deletes the rows of the outbox on db published more than retention
// ago and reports how many. It reads those rows twice and one more, not the
// table: the outbox holds a week of rows (Retention), and a cleanup every
// ten minutes that scanned them all (`DELETE … WHERE published_at < …` has
// no index to use) read the week to delete ten minutes of it
// (docs/performance.md, item 35).
//
// The rows to delete are the oldest, in seq order: the relay publishes in
// order and never skips a row, so published_at grows with seq. prune first
// finds the oldest row to keep (pending, or published within the
// retention) by walking the primary key from its start, then deletes the
// rows before it in batches, oldest first, through the same key
// (postgres.DeleteInBatches). Every statement is planned for its values, as
// the relay's mark is, and no plan it could take reads the table: an
// ordered walk of the key with a LIMIT, and a delete by the rows'
// addresses. Each batch still checks published_at, so a pending row that a
// transaction open while the bound was read commits below it is never
// deleted.
//
// The walk covers at most pruneWindow values of seq from the oldest row:
// when no row to keep is among them, their rows are deleted and the next
// window walked, so no statement's cost grows with a backlog (a cleanup
// left undone for long, or a shorter retention): one walk over every old
// row outlasted the statement deadline, and such a cleanup never deleted
// anything. A cleanup walks at most pruneMaxWindows windows, as the
// notifications' prune caps its batches: it runs in the loop that
// publishes, so a backlog is deleted over several cleanups instead of
// holding publishing up until it is gone.
//
// more reports that the walk stopped at its last window with old rows
// perhaps left beyond it (the cleanup then comes back sooner, cleanupCatchUp).
func prune(ctx context.Context, db postgres.Querier, retention time.Duration) (deleted int64, more bool, err error) {
	return pruneWindows(ctx, db, retention, pruneWindow, pruneMaxWindows)
}

// pruneWindow is how many values of seq one walk of prune covers (ten
// delete batches), and pruneMaxWindows how many windows one cleanup walks:
// up to 200,000 rows every CleanupInterval.
const (
	pruneWindow     = 10 * postgres.DeleteBatch
	pruneMaxWindows = 4
)

func pruneWindows(ctx context.Context, db postgres.Querier, retention time.Duration, window int64, windows int) (int64, bool, error) {
	secs := retention.Seconds()
	var deleted int64
	for range windows {
		// The oldest row's seq (nil when the outbox is empty), and the seq
		// of the oldest row kept, or the window's end.
		var lo, bound *int64
		if err := db.QueryRow(ctx, `SELECT m.lo, COALESCE((SELECT seq FROM outbox
				WHERE seq >= m.lo AND seq < m.lo + $2
					AND (published_at IS NULL OR published_at >= now() - make_interval(secs => $1))
				ORDER BY seq LIMIT 1), m.lo + $2)
			FROM (SELECT min(seq) AS lo FROM outbox) m`, pgx.QueryExecModeExec, secs, window).Scan(&lo, &bound); err != nil {
			return deleted, false, err
		}
		if lo == nil || bound == nil {
			return deleted, false, nil
		}
		// From the window's start: the entries of rows an earlier window
		// deleted are not walked again (while something holds back
		// PostgreSQL's cleanup horizon they are not yet marked dead).
		n, err := postgres.DeleteInBatches(ctx, db, `DELETE FROM outbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM outbox
			WHERE seq >= $3 AND seq < $1 AND published_at < now() - make_interval(secs => $2)
			ORDER BY seq LIMIT $4))`, *bound, secs, *lo)
		deleted += n
		if err != nil || *bound < *lo+window || n == 0 {
			return deleted, false, err
		}
	}
	return deleted, true, nil
}

// errNotWritten is the failure of a batch whose writes did not end within
// timeout: the broker did not read the connection. It names the resource
// alarm only when the broker said it blocks the connection (blocked, the
// publisher's flag); otherwise the alarm is one likely cause, a link too slow
// the other.
func errNotWritten(timeout time.Duration, blocked bool) error {
	if blocked {
		return fmt.Errorf("not written within %s: the broker did not read the connection, which it blocks (connection.blocked: a resource alarm)", timeout)
	}
	return fmt.Errorf("not written within %s: the broker did not read the connection: blocked by a resource alarm, or the link too slow", timeout)
}

// publisher is a lazily (re)opened confirm-mode channel.
type publisher struct {
	conn *amqp.Connection
	ch   *amqp.Channel
	// returns receives ch's returned mandatory messages (nil while closed).
	returns chan amqp.Return
	// closes receives the error that closed ch (closedBy), and closedWith
	// keeps it once read.
	closes     chan *amqp.Error
	closedWith *amqp.Error
	// blocked says the broker blocks conn (from connection.blocked to
	// connection.unblocked: watchBlocks).
	blocked *atomic.Bool
	// alarmTold says a block was warned of and not seen to end since
	// (tellAlarmOver). RabbitMQ blocks every connection that publishes
	// during a resource alarm, and the relay opens a new one after each
	// batch it gives up on: the warning comes once per alarm, not once per
	// connection. Each outbox database's worker has its own publisher, so
	// an alarm is warned of once for each outbox database.
	alarmTold atomic.Bool
}

// channel opens the channel when needed; room is the most messages one
// batch publishes on it, for which returns keeps room (the client drops a
// return it cannot hand over within 5 s, which would look confirmed). The
// broker's blocks of its connection are logged on log (watchBlocks).
func (p *publisher) channel(ctx context.Context, url string, names broker.Names, room int, log *slog.Logger) (*amqp.Channel, error) {
	if p.ch != nil && !p.ch.IsClosed() && !p.conn.IsClosed() {
		return p.ch, nil
	}
	p.close()
	conn, err := broker.Dial(ctx, url, "shop-outbox-relay")
	if err != nil {
		return nil, err
	}
	blocked := new(atomic.Bool)
	go p.watchBlocks(conn.NotifyBlocked(make(chan amqp.Blocking, 1)), blocked, log)
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err == nil {
		err = broker.DeclareExchange(ch, names)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("open publisher channel: %w", err)
	}
	p.conn, p.ch, p.returns, p.blocked = conn, ch, ch.NotifyReturn(make(chan amqp.Return, room)), blocked
	p.closes, p.closedWith = ch.NotifyClose(make(chan *amqp.Error, 1)), nil
	return ch, nil
}

// closedBy is the error that closed the channel, which the caller saw
// closed: the broker's channel.close (404 NOT_FOUND, the exchange deleted;
// 403 ACCESS_REFUSED; 406 PRECONDITION_FAILED, …) or connection.close (320
// CONNECTION_FORCED: the node stopping, or the connection closed by an
// operator), or the client's own error when the link broke (501
// FRAME_ERROR, Server false: the node killed, the network cut, heartbeats
// missed); a connection's close closes its channels with the connection's
// error. nil when the relay closed it. The client marks the channel closed,
// then hands the error over (closes has room for it) or closes closes, and
// only then ends the confirmations still awaited: the wait is short, and
// bounded in case a close ever skipped it.
func (p *publisher) closedBy() *amqp.Error {
	if p.closedWith == nil && p.closes != nil {
		t := time.NewTimer(closeNoticeWait)
		defer t.Stop()
		select {
		case e := <-p.closes:
			p.closedWith = e
		case <-t.C:
		}
	}
	return p.closedWith
}

// closeNoticeWait bounds closedBy's wait for the client's notice of a close.
const closeNoticeWait = time.Second

// closedErr is the failure of a publication on the closed channel of conn:
// what closed (followed by when), and the AMQP error it closed with when
// there is one (closedBy), which the failure's log line shows as attributes
// of their own (withAMQPError): the code tells a node that went away (320,
// 501) from a refusal of the broker's (404, 406, …), which the words alone
// did not.
func (p *publisher) closedErr(conn *amqp.Connection, when string) error {
	what := "the broker closed the channel"
	if conn.IsClosed() {
		what = "the connection to the broker was lost"
	}
	if e := p.closedBy(); e != nil {
		return fmt.Errorf("%s%s: %w", what, when, e)
	}
	return fmt.Errorf("%s%s", what, when)
}

// withAMQPError appends to args the AMQP error in err's chain, when there is
// one, as amqp_code, amqp_reason, amqp_server (the broker sent it, rather
// than the client met it) and amqp_recover (the client deems it a soft,
// channel-level error): the codes the relay meets are listed in
// docs/runbooks/outbox-lag.md.
func withAMQPError(args []any, err error) []any {
	var e *amqp.Error
	if !errors.As(err, &e) {
		return args
	}
	return append(args, "amqp_code", e.Code, "amqp_reason", e.Reason, "amqp_server", e.Server, "amqp_recover", e.Recover)
}

// watchBlocks tells of the broker's blocks of one connection until it
// closes, which closes blocks: a block at warn, with the broker's reason
// (its memory or disk alarm), once per alarm for this publisher's outbox
// database (alarmTold), and its end at info. The batch it holds up is given
// up at its deadline (Config.ConfirmTimeout) and goes again on a new
// connection, which the broker blocks too until the alarm clears.
func (p *publisher) watchBlocks(blocks <-chan amqp.Blocking, blocked *atomic.Bool, log *slog.Logger) {
	for b := range blocks {
		blocked.Store(b.Active)
		switch {
		case !b.Active:
			p.tellAlarmOver(log)
		case !p.alarmTold.Swap(true):
			log.Warn("the broker blocked the publishing connection (resource alarm): each batch is given up at RELAY_CONFIRM_TIMEOUT "+
				"and published again on a new connection until the alarm clears; the rows stay pending", "reason", b.Reason)
		}
	}
}

// tellAlarmOver logs at info that the broker accepts events again, when a
// block was told of (watchBlocks): its connection was unblocked, or a batch
// was confirmed on one it does not block.
func (p *publisher) tellAlarmOver(log *slog.Logger) {
	if p.alarmTold.Swap(false) {
		log.Info("the broker accepts events again: the resource alarm that blocked the publishing connection is over")
	}
}

// closeWait bounds the wait for the broker's answer to connection.close;
// past it the socket is closed. A broker that did not confirm a batch (a
// queue's process stalled) may not answer the close either: an unbounded
// Close stalled the worker after ConfirmTimeout all the same.
const closeWait = 5 * time.Second

func (p *publisher) close() {
	if p.conn != nil {
		_ = p.conn.CloseDeadline(time.Now().Add(closeWait))
	}
	p.conn, p.ch, p.returns, p.blocked = nil, nil, nil, nil
	p.closes, p.closedWith = nil, nil
}
