// Package connector delivers events from RabbitMQ to OpenFaaS functions. It
// discovers functions and their comma-separated `topic` annotations through
// the gateway API (connector-sdk), gives every subscribed function its own
// durable quorum queue bound to its topics on the events exchange, invokes the
// function at its gateway URL (sent there or directly, Config.Direct) and acks
// on any 2xx. A failed invocation is
// retried after a growing delay (per-function quorum TTL queues that
// dead-letter back to the function's queue at least once, so the queue itself
// is never blocked and a broker restart loses no waiting retry) and, after
// MaxAttempts, moved to the function's dead-letter queue with headers saying
// why. Nothing is requeued forever and nothing is dropped silently.
package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sdktypes "github.com/openfaas/connector-sdk/types"
	sdk "github.com/openfaas/go-sdk"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Config configures a Connector. Zero values take the documented defaults.
type Config struct {
	// GatewayURL is the OpenFaaS gateway used for discovery and invocation.
	GatewayURL string
	// Direct names the functions invoked at their own address instead of
	// through the gateway (gatewayurl.DirectFrom: FUNCTION_URLS,
	// FUNCTION_URL_TEMPLATE); nil invokes every function through the gateway.
	Direct *gatewayurl.Direct
	// BrokerURL is the RabbitMQ URL (default broker.DefaultURL).
	BrokerURL string
	// Names are the exchange and queue names (empty prefix in production).
	Names broker.Names
	// MaxAttempts is the number of invocations before a message is
	// dead-lettered (default 5).
	MaxAttempts int
	// RetryDelay is the delay before the first retry; each next retry waits
	// twice as long (default 5 s).
	RetryDelay time.Duration
	// MaxRetryDelay caps the retry delay (default 5 min).
	MaxRetryDelay time.Duration
	// Prefetch bounds the unacked messages per function (default 10): per
	// subscription, as Concurrency.
	Prefetch int
	// Concurrency bounds the parallel invocations per function (default
	// Prefetch): per subscription, so a function that dropped out of the
	// gateway's list and came back while the invocations of its retired
	// subscription still run (each at most InvokeTimeout) briefly has up to
	// twice as many, more if it drops out and comes back again meanwhile.
	Concurrency int
	// RefreshInterval is how often the gateway is asked for functions (default 5 s).
	RefreshInterval time.Duration
	// InvokeTimeout bounds one invocation (default 35 s, above exec_timeout).
	InvokeTimeout time.Duration
	// StopTimeout bounds a stop's wait for the invocations in flight (drain;
	// default InvokeTimeout and StopMargin). The runtime's kill must come
	// after it: faasd kills a service 30 s after its SIGTERM, whatever its
	// compose file says, so docker-compose.yml sets it below that.
	StopTimeout time.Duration
	// MaxBackoff caps the delay between broker reconnect attempts, and
	// between replacements of a consumer the broker keeps ending (default
	// 10 s).
	MaxBackoff time.Duration
	// UnbindAfter is how long a function may be missing from the gateway's
	// list before its queue is unbound from its topics (default 10 min).
	// faasd updates a function by removing it and deploying it again: in
	// between, its queue keeps its topics and the events published then
	// wait there (nothing consumes them) until it is back. A function
	// removed for good keeps, in its queue, what was published before the
	// unbinding.
	UnbindAfter time.Duration
	// KnownTopics are the topics that may be bound from an earlier run
	// (default events.Types()): when a function is first seen, those it no
	// longer subscribes to are unbound, since the broker keeps bindings across
	// connector restarts.
	KnownTopics []string
	// GatewayUser and GatewayPassword are the gateway API's basic-auth
	// credentials (secrets basic-auth-user, basic-auth-password), for
	// discovery on a gateway with basic_auth=true; empty means none.
	GatewayUser, GatewayPassword string
	// InternalToken is the connector's own internal credential (secret
	// internal-token-rabbitmq-connector) sent as X-Internal-Token with
	// every invocation: event handlers admit the rabbitmq-connector caller
	// only (routes.Table).
	InternalToken string
}

func (c *Config) setDefaults() {
	if c.BrokerURL == "" {
		c.BrokerURL = broker.DefaultURL
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 5 * time.Second
	}
	if c.MaxRetryDelay <= 0 {
		c.MaxRetryDelay = 5 * time.Minute
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 10
	}
	if c.Concurrency <= 0 || c.Concurrency > c.Prefetch {
		c.Concurrency = c.Prefetch
	}
	if c.UnbindAfter <= 0 {
		c.UnbindAfter = 10 * time.Minute
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 5 * time.Second
	}
	if c.InvokeTimeout <= 0 {
		c.InvokeTimeout = 35 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = c.InvokeTimeout + StopMargin
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.KnownTopics == nil {
		c.KnownTopics = events.Types()
	}
}

// Validate reports every configuration problem.
func (c Config) Validate() error {
	var errs []error
	if c.GatewayURL == "" {
		errs = append(errs, errors.New("connector: GATEWAY_URL is required"))
	}
	if c.MaxAttempts > 20 {
		errs = append(errs, errors.New("connector: MAX_ATTEMPTS must be at most 20"))
	}
	if c.MaxAttempts <= 20 && slices.Max(append(c.Delays(), 0)) > maxRetryDelay {
		errs = append(errs, fmt.Errorf("connector: RETRY_DELAY and MAX_RETRY_DELAY must keep every retry delay at most %s (RabbitMQ's longest x-message-ttl)", maxRetryDelay))
	}
	return errors.Join(errs...)
}

// maxRetryDelay is the longest retry delay: RabbitMQ refuses a queue whose
// x-message-ttl is longer (PRECONDITION_FAILED, value_too_large; 10 × 365
// days, seen on 3.10), and a retry queue it refuses fails every refresh.
const maxRetryDelay = 315_360_000_000 * time.Millisecond

// Delays returns the retry delays: Delays()[i] is the wait after the
// (i+1)-th failed invocation. There are MaxAttempts-1 of them.
func (c Config) Delays() []time.Duration {
	c.setDefaults()
	out := make([]time.Duration, 0, c.MaxAttempts-1)
	d := min(c.RetryDelay, c.MaxRetryDelay)
	for range c.MaxAttempts - 1 {
		out = append(out, d)
		// Doubled up to the cap, never past it: doubling on overflowed a
		// long RetryDelay to a negative delay (TestRetryDelaysStayWithinTheCap).
		if d > c.MaxRetryDelay/2 {
			d = c.MaxRetryDelay
		} else {
			d *= 2
		}
	}
	return out
}

// Connector consumes the function queues. Build it with New and call Run.
type Connector struct {
	cfg     Config
	delays  []time.Duration
	log     *slog.Logger
	lookup  *sdktypes.FunctionLookupBuilder
	topics  sdktypes.TopicMap
	client  *http.Client
	metrics *metrics

	// last is the last function→topics map the gateway returned, kept when a
	// refresh fails; bound is what this process has bound, kept across
	// broker reconnects so removed topics are unbound.
	last  map[string][]string
	bound map[string]map[string]bool
	// gone holds when each bound function went missing from the list
	// (Config.UnbindAfter).
	gone map[string]time.Time
	// migrated lists the functions whose legacy retry queues are gone.
	migrated map[string]bool
	// unrouted is the count of shop.unrouted the last refresh saw: the
	// warning about it is logged when it changes, not at every refresh.
	unrouted int
	// refused holds, per function whose queues the broker refuses, what
	// was last logged of it (tellRefused).
	refused map[string]refusal
	// retiring counts the retired subscriptions whose invocations still run
	// (retire): a stop waits for them as for the others (drain), where
	// Run returned while they ran and their acks met a closed connection.
	retiring sync.WaitGroup
	// retired holds those subscriptions, so that the session's end cuts
	// their invocations with its own (cutRetired); guarded by retiredMu.
	retiredMu sync.Mutex
	retired   map[*subscription]bool
	// now is the clock of the refusals' log (tellRefused): time.Now, a
	// test's own clock to see the minute's repeat without waiting a minute.
	now func() time.Time
}

// refusal is what was last logged of a function's refused queues.
type refusal struct {
	err    string
	logged time.Time
	since  int // refreshes refused since
}

// refusalLogEvery is how often a refusal that lasts is logged again: it
// is met at every refresh (5 s), and each one is counted in
// shop_connector_refresh_errors_total.
const refusalLogEvery = time.Minute

// tellRefused counts a refresh whose declarations for fn the broker refused
// and logs it the first time, when the broker's answer changes, and then at
// most once per refusalLogEvery (by c.now) with the refreshes refused
// meanwhile; until 2026-12-08 every refresh logged it at error.
func (c *Connector) tellRefused(fn string, err error) {
	c.metrics.refreshErrs.Inc()
	r, seen := c.refused[fn]
	now := c.now()
	if seen && r.err == err.Error() && now.Sub(r.logged) < refusalLogEvery {
		r.since++
		c.refused[fn] = r
		return
	}
	args := []any{"fn", fn, "err", err}
	if seen {
		args = append(args, "refused_refreshes_since_logged", r.since)
	}
	c.log.Error("the broker refused the function's queues, bindings or consumer; its events wait until the next refresh", args...)
	c.refused[fn] = refusal{err: err.Error(), logged: now}
}

type metrics struct {
	invocations *prometheus.CounterVec
	requeued    *prometheus.CounterVec
	unrouted    prometheus.Gauge
	deadLetters *prometheus.GaugeVec
	refreshErrs prometheus.Counter
}

// New builds a connector whose metrics are registered on reg.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Connector, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_connector_invocations_total",
			Help: "Function invocations by outcome: ok, retry (failed, scheduled again), dead_letter, requeue (failed, its retry or dead-letter copy not taken by the broker: back to the function's queue).",
		}, []string{"function", "outcome"}),
		requeued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_connector_requeued_total",
			Help: "Deliveries put back in the function's queue by a worker that stopped, counted nowhere else: reason stop (the connector stopped or its broker session ended: never invoked, or an invocation cut or failed whose copy was not published) or gone (the function left the gateway's list: never invoked). A copy the broker did not take is shop_connector_invocations_total{outcome=\"requeue\"}.",
		}, []string{"function", "reason"}),
		unrouted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shop_unrouted_messages", Help: "Events waiting in shop.unrouted: published with no subscriber.",
		}),
		deadLetters: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shop_dead_letters", Help: "Messages in each function's dead-letter queue.",
		}, []string{"function"}),
		refreshErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shop_connector_refresh_errors_total", Help: "Failed refreshes: function discoveries (the last map is kept), and each function whose queues, bindings or consumer the broker refused (tried again at the next refresh).",
		}),
	}
	for _, c := range []prometheus.Collector{m.invocations, m.requeued, m.unrouted, m.deadLetters, m.refreshErrs} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("connector metrics: %w", err)
		}
	}
	discovery := &http.Client{Timeout: 5 * time.Second}
	var gatewayAuth sdk.ClientAuth
	if cfg.GatewayUser != "" {
		gatewayAuth = &sdk.BasicAuth{Username: cfg.GatewayUser, Password: cfg.GatewayPassword}
	}
	return &Connector{
		cfg:    cfg,
		delays: cfg.Delays(),
		log:    log,
		lookup: sdktypes.NewFunctionLookupBuilder(cfg.GatewayURL, ",", discovery, gatewayAuth),
		topics: sdktypes.NewTopicMap(),
		// Keep-alive connections to the gateway (or the functions called
		// directly) for every invocation at once (Go's default keeps 2 idle
		// per host: with more deliveries in flight nearly every call opened a
		// new connection).
		// No redirect is followed (gatewayurl.NoRedirect): a 3xx is a
		// failed invocation, retried and then dead-lettered.
		client: &http.Client{Timeout: cfg.InvokeTimeout, CheckRedirect: gatewayurl.NoRedirect,
			Transport: gatewayurl.Locator{Gateway: cfg.GatewayURL, Direct: cfg.Direct}.Transport(gatewayurl.NewTransport())},
		metrics: m,
		bound:   map[string]map[string]bool{},
		gone:    map[string]time.Time{},
		refused: map[string]refusal{},
		now:     time.Now,
		retired: map[*subscription]bool{},

		migrated: map[string]bool{},
	}, nil
}

// Run consumes until ctx ends, reconnecting with backoff after a broker
// failure. It returns only when ctx ends.
func (c *Connector) Run(ctx context.Context) {
	bo := broker.Backoff{Max: c.cfg.MaxBackoff}
	for ctx.Err() == nil {
		err := c.session(ctx, &bo)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("broker session ended, reconnecting", "err", err)
		if !bo.Wait(ctx) {
			return
		}
	}
}

// closeWait bounds the wait for the broker's answer to the close of the
// publishing connection: a connection blocked by a resource alarm is not
// read, so an unbounded Close would wait for the alarm to clear, and with it
// the session's end and the reconnect. A heartbeat from the broker may push
// the client's read deadline on: the close then ends with the next write
// after closeWait, at most a heartbeat interval (10 s) later.
const closeWait = 5 * time.Second

// The names of the connector's two connections on the broker.
const (
	ConnName    = "shop-connector"        // consumes, acknowledges, declares
	PubConnName = "shop-connector-copies" // publishes retry and dead-letter copies
)

// session runs on two broker connections until either fails or ctx ends:
// conn consumes, acknowledges and declares, and publishes nothing; pubConn
// publishes the retry and dead-letter copies. During a resource alarm
// RabbitMQ blocks a connection once it publishes and then reads nothing from
// it until the alarm clears: only the deliveries waiting for their copy wait
// (unacked; requeued after InvokeTimeout), while every function's successful
// deliveries are still acknowledged on conn. The session's loop therefore
// waits for nothing on pubConn: a subscription opens its publishing channel
// with its first copy (subscription.pubChannel), and the legacy retry
// queues are migrated beside the loop (migrate). Until 2026-12-05 a refresh
// that subscribed a function opened channels on pubConn and, once pubConn was
// blocked, waited for the alarm to clear: no refresh, no new subscription,
// and a lost conn went unnoticed, so nothing was consumed for any function.
// When either connection is lost the session ends and both are opened again:
// the deliveries not yet acked return to their queues with conn.
func (c *Connector) session(ctx context.Context, bo *broker.Backoff) error {
	conn, err := broker.Dial(ctx, c.cfg.BrokerURL, ConnName)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	pubConn, err := broker.Dial(ctx, c.cfg.BrokerURL, PubConnName)
	if err != nil {
		return err
	}
	// The migrations end once pubConn is closed and their context cancelled
	// (both deferred below, so done first), and the session waits for them:
	// none outlives it, and Run returns with nothing left running.
	var migrations sync.WaitGroup
	defer migrations.Wait()
	defer func() { _ = pubConn.CloseDeadline(time.Now().Add(closeWait)) }()
	mctx, cancelMigrations := context.WithCancel(ctx)
	defer cancelMigrations()
	// migrated receives the outcome of each migration; migrating holds the
	// functions whose migration runs.
	migrated := make(chan migration)
	migrating := map[string]bool{}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	pubClosed := pubConn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := pubConn.NotifyBlocked(make(chan amqp.Blocking, 1))
	admin, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := broker.DeclareExchange(admin, c.cfg.Names); err != nil {
		return err
	}
	c.log.Info("connected to RabbitMQ")
	bo.Reset()
	subs := map[string]*subscription{}
	defer func() {
		if ctx.Err() != nil {
			// The process stops: the invocations in flight run to their
			// answer before anything is closed (drain).
			c.drain(subs, conn, closed)
		}
		// pubConn is closed first (again, for the early returns above): a
		// worker waiting on it, in a copy's declaration after a return or
		// its write to a connection the broker blocked, then fails at once
		// (its delivery goes back unacked), and stop need not wait for an
		// alarm to clear before the session can end and reconnect.
		_ = pubConn.CloseDeadline(time.Now().Add(closeWait))
		for _, s := range subs {
			s.stop()
		}
		c.cutRetired()
	}()
	// ended receives a subscription the broker ended while the connection
	// stays up (subscription.watch). Its replacement waits for again: a
	// short delay after a calm spell, a growing one while the broker keeps
	// ending consumers (one that cancels every new consumer would otherwise
	// get a discovery, the declarations and a new consumer in a loop).
	ended := make(chan *subscription)
	var again <-chan time.Time
	endedBackoff := broker.Backoff{Max: c.cfg.MaxBackoff}
	var lastEnded time.Time
	tick := time.NewTicker(c.cfg.RefreshInterval)
	defer tick.Stop()
	for refresh := true; ; {
		if refresh {
			if err := c.refresh(ctx, conn, pubConn, &admin, subs, ended); err != nil {
				return err
			}
			// Upgrade from classic retry queues, once the function's new
			// retry queues are declared (it is subscribed).
			for fn := range subs {
				if !c.migrated[fn] && !migrating[fn] {
					migrating[fn] = true
					migrations.Go(func() { c.migrate(mctx, pubConn, fn, migrated) })
				}
			}
		}
		refresh = true
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			return fmt.Errorf("connection closed: %v", err)
		case err := <-pubClosed:
			return fmt.Errorf("publishing connection closed: %v", err)
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
			} else if b.Active {
				c.log.Warn("the broker blocked the publishing connection (resource alarm): retry and dead-letter copies wait, other deliveries are still acknowledged",
					"reason", b.Reason)
			} else {
				c.log.Info("the broker unblocked the publishing connection")
			}
			refresh = false
		case s := <-ended:
			if conn.IsClosed() || pubConn.IsClosed() {
				// Its channel closed with its connection, whose own
				// notice ends the session.
				refresh = false
				break
			}
			// Drop it and refresh soon: the function's queues are declared
			// again (the queue may have been deleted) and a new consumer
			// takes its place.
			// The replacement waits for the next delay, unless one is
			// already pending (the log then names none).
			var delay time.Duration
			if again == nil {
				if time.Since(lastEnded) > 2*endedBackoff.Max {
					endedBackoff.Reset()
				}
				lastEnded = time.Now()
				delay = endedBackoff.Next()
				again = time.After(delay)
			}
			if subs[s.fn] == s {
				args := []any{"fn", s.fn, "reason", s.ended}
				if delay > 0 {
					args = append(args, "after", delay)
				}
				c.log.Warn("the broker ended the function's consumer, subscribing again", args...)
				s.stop()
				delete(subs, s.fn)
			}
			refresh = false
		case m := <-migrated:
			delete(migrating, m.fn)
			if m.err != nil {
				// Tried again at the next refresh.
				c.log.Warn("could not migrate the legacy retry queues yet", "fn", m.fn, "moved", m.moved, "err", m.err)
			} else {
				c.migrated[m.fn] = true
				if m.moved > 0 {
					c.log.Info("moved messages from legacy retry queues", "fn", m.fn, "count", m.moved)
				}
			}
			refresh = false
		case <-again:
			again = nil
		case <-tick.C:
		}
	}
}

// migration is the outcome of one function's migration.
type migration struct {
	fn    string
	moved int
	err   error
}

// migrate moves what fn's legacy classic retry queues hold to its quorum
// retry queues (broker.MigrateRetryQueues) and sends the outcome to done,
// unless ctx ends first. The move publishes, so on pubConn: it runs beside
// the session's loop, since during a resource alarm the broker answers
// nothing on pubConn until the alarm clears or the session closes pubConn.
// A function may be consumed meanwhile: the legacy queues dead-letter to its
// queue, as the new ones do.
func (c *Connector) migrate(ctx context.Context, pubConn *amqp.Connection, fn string, done chan<- migration) {
	moved, err := broker.MigrateRetryQueues(ctx, pubConn, c.cfg.Names, fn, c.delays)
	if err != nil {
		err = fmt.Errorf("migrate the legacy retry queues of %s: %w", fn, err)
	}
	select {
	case done <- migration{fn: fn, moved: moved, err: err}:
	case <-ctx.Done():
	}
}

// refresh asks the gateway for functions and reconciles queues, bindings and
// consumers. A failed discovery keeps the last map; a broker error is returned.
// It waits for the broker on conn only, never on pubConn (see session).
//
// A function whose queues the broker refuses while the connection stays up
// (a queue of its name declared with other arguments, PRECONDITION_FAILED;
// a binding or a consumer refused) is logged and left for the next refresh,
// on a new admin channel (the refusal closed *admin): the other functions
// are reconciled and consumed as usual. Until 2026-12-07 the refusal ended
// the session, every function's consumer with it, and each reconnect met it
// again: one function's queue stopped every event delivery.
func (c *Connector) refresh(ctx context.Context, conn, pubConn *amqp.Connection, admin **amqp.Channel, subs map[string]*subscription, ended chan<- *subscription) error {
	byTopic, err := c.lookup.Build()
	if err != nil {
		c.metrics.refreshErrs.Inc()
		c.log.Warn("function discovery failed, keeping the last map", "err", err)
	} else {
		c.topics.Sync(&byTopic)
		c.last = byFunction(byTopic)
	}
	names := c.cfg.Names
	for fn, topics := range c.last {
		err := c.reconcile(ctx, conn, pubConn, *admin, fn, topics, subs, ended)
		if err == nil {
			if _, ok := c.refused[fn]; ok {
				delete(c.refused, fn)
				c.log.Info("the broker took the function's queues, bindings and consumer again", "fn", fn)
			}
			continue
		}
		if conn.IsClosed() {
			return err
		}
		c.tellRefused(fn, err)
		if (*admin).IsClosed() {
			ch, err := conn.Channel()
			if err != nil {
				return fmt.Errorf("open the admin channel again: %w", err)
			}
			*admin = ch
		}
	}
	now := time.Now()
	for fn, bound := range c.bound {
		if _, ok := c.last[fn]; ok {
			delete(c.gone, fn)
			continue
		}
		admin := *admin
		// Nothing to invoke: stop consuming, and let the queue keep what is
		// published until the function is back or UnbindAfter has passed.
		if s := subs[fn]; s != nil {
			s.retire()
			delete(subs, fn)
		}
		since, ok := c.gone[fn]
		if !ok {
			c.gone[fn] = now
			c.log.Info("function missing from the gateway: its queue keeps its topics", "fn", fn, "unbind_after", c.cfg.UnbindAfter.String())
			continue
		}
		if now.Sub(since) < c.cfg.UnbindAfter {
			continue
		}
		for t := range bound {
			if err := admin.QueueUnbind(names.Queue(fn), t, names.Exchange(), nil); err != nil {
				return err
			}
			c.log.Info("unsubscribed", "fn", fn, "topic", t)
		}
		delete(c.bound, fn)
		delete(c.gone, fn)
		// The function is gone for good: its dead-letter series goes with
		// it, or DeadLetters fired on its last value forever.
		c.metrics.deadLetters.DeleteLabelValues(fn)
	}
	c.observe(conn)
	return nil
}

// reconcile declares fn's queues (when it has no subscription), binds its
// queue to topics and unbinds the others, and subscribes it. An error leaves
// fn for the next refresh: its bindings are reconciled again from the start
// when the first pass did not end.
func (c *Connector) reconcile(ctx context.Context, conn, pubConn *amqp.Connection, admin *amqp.Channel, fn string, topics []string, subs map[string]*subscription, ended chan<- *subscription) error {
	names := c.cfg.Names
	s := subs[fn]
	if s == nil {
		if err := broker.DeclareFunction(admin, names, fn, c.delays); err != nil {
			return err
		}
	}
	bound := c.bound[fn]
	if bound == nil {
		bound = map[string]bool{}
		// Bindings outlive this process: drop known topics the function
		// gave up while no connector was running.
		for _, t := range c.cfg.KnownTopics {
			if !slices.Contains(topics, t) {
				if err := admin.QueueUnbind(names.Queue(fn), t, names.Exchange(), nil); err != nil {
					return err
				}
			}
		}
		c.bound[fn] = bound
	}
	for _, t := range topics {
		if err := admin.QueueBind(names.Queue(fn), t, names.Exchange(), false, nil); err != nil {
			return err
		}
		if !bound[t] {
			c.log.Info("subscribed", "fn", fn, "topic", t)
		}
		bound[t] = true
	}
	for t := range bound {
		if !slices.Contains(topics, t) {
			if err := admin.QueueUnbind(names.Queue(fn), t, names.Exchange(), nil); err != nil {
				return err
			}
			delete(bound, t)
			c.log.Info("unsubscribed", "fn", fn, "topic", t)
		}
	}
	if s == nil {
		s, err := c.subscribe(ctx, conn, pubConn, fn, ended)
		if err != nil {
			return err
		}
		subs[fn] = s
		// The function's requeue series exist from its subscription, at
		// 0, as its other series do once it is invoked: a rate over them
		// has data (the dashboard's panel shows a flat line, not "no
		// data", TestDashboardAndAlertsHaveData).
		for _, why := range []string{requeueStop, requeueGone} {
			c.metrics.requeued.WithLabelValues(fn, why)
		}
	}
	return nil
}

// observe refreshes the unrouted gauge and the dead-letter gauge of every
// function whose queue is bound — also one missing from the gateway for
// less than UnbindAfter, which has no consumer, so a purge of its
// dead-letter queue shows. The declares go on a throwaway channel, opened
// again after one fails (a failed passive declare closes its channel, and
// every later declare on it failed too); a dead-letter queue that does not
// exist (deleted by hand) reads 0.
func (c *Connector) observe(conn *amqp.Connection) {
	var ch *amqp.Channel
	defer func() {
		if ch != nil {
			_ = ch.Close()
		}
	}()
	declare := func(queue string) (amqp.Queue, error) {
		if ch == nil {
			var err error
			if ch, err = conn.Channel(); err != nil {
				ch = nil
				return amqp.Queue{}, err
			}
		}
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			_ = ch.Close()
			ch = nil
		}
		return q, err
	}
	if q, err := declare(c.cfg.Names.Unrouted()); err == nil {
		c.metrics.unrouted.Set(float64(q.Messages))
		// Logged when the count changes, not every RefreshInterval: old
		// events may sit there until an operator purges them
		// (docs/runbooks/dead-letters.md), and the gauge
		// (UnroutedEvents) says they are still there.
		if q.Messages > 0 && q.Messages != c.unrouted {
			c.log.Warn("events without subscriber are waiting", "queue", c.cfg.Names.Unrouted(), "count", q.Messages)
		}
		c.unrouted = q.Messages
	}
	for fn := range c.bound {
		q, err := declare(c.cfg.Names.DLQ(fn))
		var amqpErr *amqp.Error
		switch {
		case err == nil:
			c.metrics.deadLetters.WithLabelValues(fn).Set(float64(q.Messages))
		case errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound:
			c.metrics.deadLetters.WithLabelValues(fn).Set(0)
		}
	}
}

// byFunction inverts connector-sdk's topic→functions map. Function names may
// carry ".namespace"; queues and invocations use the bare name.
func byFunction(byTopic map[string][]string) map[string][]string {
	out := map[string][]string{}
	for topic, fns := range byTopic {
		for _, fn := range fns {
			name, _, _ := strings.Cut(fn, ".")
			if !slices.Contains(out[name], topic) {
				out[name] = append(out[name], topic)
			}
		}
	}
	for _, ts := range out {
		slices.Sort(ts)
	}
	return out
}

// subscription consumes one function's queue.
type subscription struct {
	c  *Connector
	fn string
	// ch consumes and acknowledges on the session's consuming connection;
	// pub, in confirm mode, publishes the copies on its publishing one,
	// pubConn. pub is opened by the first copy, and again by the next copy
	// after it closed (pubChannel); opening is the open under way, or done
	// and not yet taken, while there is none. pub, opening and returns are
	// guarded by pubMu.
	ch      *amqp.Channel
	pubConn *amqp.Connection
	pubMu   sync.Mutex
	pub     *amqp.Channel
	opening chan openedChannel
	// returns receives what the broker hands back of pub's mandatory
	// publishes (publish holds pubMu, so at most one is in flight).
	returns chan amqp.Return
	tag     string
	// deliveries is the consumer's; retire drains what the client holds.
	deliveries <-chan amqp.Delivery
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	// stopped is closed by stop or retire; ended says why the broker ended the
	// subscription (set by watch before it hands the subscription over).
	stopped  chan struct{}
	stopOnce sync.Once
	ended    string
	// why is the reason the workers count the deliveries they put back
	// with once stopped is closed (requeueStop, requeueGone): set before
	// the close, read after it.
	why string
	// quiesced is set by quiesce, which cancelled the consumer already
	// (read and written by the session's goroutine only).
	quiesced bool
	// copies is the context of the retry and dead-letter copies: cancel's
	// and also ended when the connector is told to stop, while the
	// invocations go on (drain).
	copies context.Context
}

// The reasons of shop_connector_requeued_total.
const (
	requeueStop = "stop" // stop: the connector stops, or its session ended
	requeueGone = "gone" // retire: the function left the gateway's list
)

// requeue puts d back in the function's queue, counted with why.
func (s *subscription) requeue(d amqp.Delivery, why string) {
	s.c.metrics.requeued.WithLabelValues(s.fn, why).Inc()
	_ = d.Nack(false, true)
}

// end closes stopped, once, saying why (requeueStop, requeueGone).
func (s *subscription) end(why string) {
	s.stopOnce.Do(func() {
		s.why = why
		close(s.stopped)
	})
}

// returnBuffer holds the returns of a publishing channel until its next
// publish reads them: the client blocks its reader (every channel of the
// connection) for 5 s on a return with no room, then drops it
// (broker.PublishMandatory).
const returnBuffer = 8

// subscribe consumes fn's queue on a channel of conn; its copies go out on a
// channel of pubConn opened by the first one (pubChannel), so subscribing
// waits for nothing on pubConn, which the broker may have blocked. The
// function's queues, retry queues included, are declared before (refresh):
// no delivery is consumed that a copy could not follow. When the broker ends
// the consumer or closes its channel while the connections stay up, the
// subscription is sent to ended for the session to replace it.
func (c *Connector) subscribe(ctx context.Context, conn, pubConn *amqp.Connection, fn string, ended chan<- *subscription) (*subscription, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open the consuming channel of %s: %w", fn, err)
	}
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("set the prefetch of %s: %w", fn, err)
	}
	s := &subscription{c: c, fn: fn, ch: ch, pubConn: pubConn, tag: "shop-connector-" + fn, stopped: make(chan struct{})}
	// Registered before the consumer starts, so no cancel or close is missed.
	cancelled := ch.NotifyCancel(make(chan string, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	deliveries, err := ch.Consume(c.cfg.Names.Queue(fn), s.tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("consume %s: %w", c.cfg.Names.Queue(fn), err)
	}
	s.deliveries = deliveries
	go s.watch(cancelled, chClosed, ended)
	// The invocations outlive ctx (the process told to stop): they end
	// with their answer or InvokeTimeout, or when stop cancels them
	// (drain, a lost connection). Their copies do not: a stopping
	// connector publishes none, and the delivery goes back to the queue.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	copies, cancelCopies := context.WithCancel(wctx)
	unwatch := context.AfterFunc(ctx, cancelCopies)
	s.copies = copies
	s.cancel = func() {
		unwatch()
		cancel()
	}
	for range c.cfg.Concurrency {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for d := range deliveries {
				select {
				case <-s.stopped:
					// Retired or stopped: no new invocation. The delivery
					// goes back to the queue, for the next consumer.
					s.requeue(d, s.why)
					continue
				default:
				}
				s.handle(wctx, d)
			}
		}()
	}
	return s, nil
}

// watch waits for the broker to end the subscription while the connection
// stays up — a basic.cancel (its queue was deleted), or a closed consumer
// channel (a consumer_timeout: a delivery unacked for too long) — and then
// hands it to the session. Without this the workers' loops ended, the
// subscription stayed in the session's map, and the queue went without a
// consumer until the connection dropped. A closed publishing channel ends
// nothing: the next copy opens another (pubChannel).
func (s *subscription) watch(cancelled <-chan string, chClosed <-chan *amqp.Error, ended chan<- *subscription) {
	select {
	case <-s.stopped:
		return
	case <-cancelled:
		s.ended = "consumer cancelled by the broker (queue deleted?)"
	case err := <-chClosed:
		s.ended = fmt.Sprintf("consumer channel closed: %v", err)
	}
	select {
	case ended <- s:
	case <-s.stopped:
	}
}

// stop cancels the consumer and the invocations in flight, waits for the
// workers, and then closes the consuming channel, so an ack a worker sends
// meanwhile (an invocation that succeeded as stop began) reaches the broker:
// closing first dropped it, and the handled delivery was redelivered.
// Unacked messages return to the queue when the channel closes. The wait
// is short: once the consumer is cancelled the client ends its deliveries
// (those it still holds are handed to the workers, which nack them at once,
// s.stopped), each invocation ends with its cancelled context, and a copy's
// publish waits on that context too (the session closes the publishing
// connection before it stops the subscriptions). A consumer whose cancel
// fails (its channel or connection is closed, or the broker refused it) has
// its channel closed first, as the client then ends its deliveries only
// with the channel. The publishing channel is closed in the background
// (closePub).
func (s *subscription) stop() {
	s.end(requeueStop)
	if !s.quiesced {
		s.cancelConsumer()
	}
	s.cancel()
	s.wg.Wait()
	_ = s.ch.Close()
	s.closePub()
}

// cancelConsumer ends the consumer, or, when the cancel fails (its channel
// or connection is closed, or the broker refused it), closes its channel:
// the client then ends its deliveries only with the channel.
func (s *subscription) cancelConsumer() {
	if err := s.ch.Cancel(s.tag, false); err != nil {
		_ = s.ch.Close()
	}
}

// quiesce takes no new delivery while the invocations in flight go on: the
// consumer is cancelled, and the deliveries the client still holds go back
// to the queue at once, uninvoked (counted, requeueStop), through a drainer
// beside the busy workers. stop then need not cancel the consumer again.
func (s *subscription) quiesce() {
	s.end(requeueStop)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for d := range s.deliveries {
			s.requeue(d, requeueStop)
		}
	}()
	s.cancelConsumer()
	s.quiesced = true
}

// StopMargin is how long past InvokeTimeout a stopping connector waits, by
// default (Config.StopTimeout), for its invocations in flight and their acks
// (drain). A deployment's grace period (Kubernetes'
// terminationGracePeriodSeconds) must exceed that wait, or the runtime kills
// the connector mid-call; faasd has none to set (it kills a service 30 s
// after its SIGTERM), so docker-compose.yml sets STOP_TIMEOUT below 30 s.
const StopMargin = 5 * time.Second

// LongestStop is the longest a stop of a connector configured with c takes,
// from SIGTERM to its exit: the drain, StopTimeout; then the close of the
// publishing connection, which a resource alarm keeps the broker from
// answering, given up after closeWait and at most a heartbeat interval more
// (session); and the flush of the traces, telemetry.FlushTimeout. A
// runtime's grace period must exceed it (Kubernetes'
// terminationGracePeriodSeconds, dev/kubecheck), or the kill may come
// while the calls under way are waited for.
func (c Config) LongestStop() time.Duration {
	c.setDefaults()
	return c.StopTimeout + closeWait + broker.Heartbeat + telemetry.FlushTimeout
}

// StopConfig is the part of a connector's Config its stop depends on,
// INVOKE_TIMEOUT and STOP_TIMEOUT, read from its environment r
// (connectors/rabbitmq reads them with it).
func StopConfig(r *config.Reader) Config {
	return Config{
		InvokeTimeout: r.Duration("INVOKE_TIMEOUT", 35*time.Second),
		StopTimeout:   r.Duration("STOP_TIMEOUT", 0), // 0: InvokeTimeout and StopMargin
	}
}

// LongestStop is Config.LongestStop for a connector whose environment is
// getenv (dev/kubecheck reads a Deployment's); an unreadable duration is
// an error.
func LongestStop(getenv func(string) string) (time.Duration, error) {
	r := config.New(getenv)
	c := StopConfig(r)
	if err := r.Err(); err != nil {
		return 0, err
	}
	return c.LongestStop(), nil
}

// drainLog is the line a stop logs once no subscription takes a new
// delivery, as it begins to wait for the invocations in flight (drain): an
// operator reads when the stop began, and a test waits for it before it
// lets an invocation answer.
const drainLog = "stopping: no new delivery is taken, waiting for the invocations in flight"

// drain is the connector's graceful stop: no subscription takes a new
// delivery (quiesce), and the invocations in flight, those of retired
// subscriptions too (retire), run on to their answer, for at most
// StopTimeout. A success is acked; a failure is put back in
// the queue uncounted (no retry or dead-letter copy: a stopping connector
// publishes none), for the next consumer to invoke again. stop then cuts
// what remains (its delivery goes back unacked). The wait is skipped, or
// ended, once the consuming connection is closed (closed): no ack can land
// on it any more, and the broker has put the deliveries back already. Until
// 2026-12-08 a stop cancelled the invocations at once: the request was cut
// while the function went on, the delivery went back to the queue, and the
// function was called a second time for an event it had handled.
func (c *Connector) drain(subs map[string]*subscription, conn *amqp.Connection, closed <-chan *amqp.Error) {
	for _, s := range subs {
		s.quiesce()
	}
	if conn.IsClosed() {
		c.log.Warn("stopping with the broker connection lost: the invocations in flight are cut, the broker has put their deliveries back")
		return
	}
	c.log.Info(drainLog, "at_most", c.cfg.StopTimeout.String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, s := range subs {
			s.wg.Wait()
		}
		c.retiring.Wait()
	}()
	wait := time.NewTimer(c.cfg.StopTimeout)
	defer wait.Stop()
	select {
	case <-done:
	case <-closed:
		c.log.Warn("stopping: the broker connection was lost, the invocations still in flight are cut, the broker has put their deliveries back")
	case <-wait.C:
		c.log.Warn("stopping: invocations or their copies still under way are cut, their deliveries go back to the queue",
			"waited", c.cfg.StopTimeout)
	}
}

// closePub closes the publishing channel, and the one being opened once it
// is, in the background: a close (and an open) waits for the broker's
// answer, which a connection blocked by a resource alarm does not read until
// the alarm clears or the session closes the connection. It is called once
// no worker publishes any more.
func (s *subscription) closePub() {
	s.pubMu.Lock()
	pub, opening := s.pub, s.opening
	s.pub, s.opening = nil, nil
	s.pubMu.Unlock()
	go func() {
		if pub != nil {
			_ = pub.Close()
		}
		if opening != nil {
			if o := <-opening; o.ch != nil {
				_ = o.ch.Close()
			}
		}
	}()
}

// retire stops consuming the queue of a function gone from the gateway's
// list without cutting the invocations in flight: the consumer is cancelled
// at once (no new delivery; those the client holds already go back to the
// queue at once, uninvoked, through a drainer beside the busy workers), and
// in the background the invocations running finish, each bounded by
// InvokeTimeout, and are acked, retried or dead-lettered as usual (a copy
// waits as long again for the broker's confirmation) before the channels
// close. stop cancelled them: the invocation's request was cut while the
// function went on (faasd's update removes a function and deploys it again,
// and a listing may miss one), the delivery went back to the queue unacked,
// and the function was called again for an event it had handled — a
// notify-user whose SMTP server had taken the email sent it twice. A
// subscription made for the function when it is back consumes beside it
// meanwhile. The session's end cuts them still (cutRetired).
func (s *subscription) retire() {
	s.end(requeueGone)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for d := range s.deliveries {
			s.requeue(d, requeueGone)
		}
	}()
	_ = s.ch.Cancel(s.tag, false)
	s.c.retiring.Add(1)
	s.c.retiredMu.Lock()
	s.c.retired[s] = true
	s.c.retiredMu.Unlock()
	go func() {
		defer s.c.retiring.Done()
		s.wg.Wait() // the workers end once the cancelled consumer's deliveries do
		s.cancel()
		_ = s.ch.Close()
		s.closePub()
		s.c.retiredMu.Lock()
		delete(s.c.retired, s)
		s.c.retiredMu.Unlock()
	}()
}

// cutRetired cuts the invocations of the retired subscriptions still
// running, as stop cuts a subscription's (their deliveries go back to the
// queue, counted with reason stop), and waits for them. The session calls it
// as it ends, past a stop's drain or with a connection lost: their acks
// would go on a connection it closes. Until 2026-12-08 they ran on past the
// session: Run returned while they ran, and after a reconnect the next
// consumer was handed their deliveries again while the function still
// handled them.
func (c *Connector) cutRetired() {
	c.retiredMu.Lock()
	for s := range c.retired {
		s.cancel()
	}
	c.retiredMu.Unlock()
	c.retiring.Wait()
}

// handle invokes the function once for d and acks, schedules a retry or
// dead-letters it. When the process is stopping, a failed d is put back in
// the queue (counted, requeueStop) so the broker redelivers it; a success is
// acked.
func (s *subscription) handle(ctx context.Context, d amqp.Delivery) {
	topic := broker.HeaderString(d.Headers, broker.HeaderTopic)
	if topic == "" {
		topic = d.RoutingKey
	}
	// The count is the message's, written by whoever published it: it is
	// read within 0..MaxAttempts (a negative one would index the retry
	// delays below with a negative number, a huge one overflow on the
	// increment, either panicking the process).
	failures := min(max(0, broker.HeaderInt(d.Headers, broker.HeaderAttempts)), s.c.cfg.MaxAttempts)
	ictx, span := s.c.deliverySpan(ctx, s.fn, topic, failures+1, d)
	status, err := s.c.invoke(ictx, s.fn, topic, failures+1, d)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "invocation failed")
	}
	// No answer (status 0: the gateway unreachable, the call timed out or
	// cut) has no status code: a 0 read as one the function answered.
	if status != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	span.End()
	// A success is acked even when stop cancelled ctx meanwhile: stop
	// waits for the workers before it closes the channel, so the ack still
	// reaches the broker, where returning first left a handled delivery
	// unacked and the function was called again for it.
	if err == nil {
		s.c.metrics.invocations.WithLabelValues(s.fn, "ok").Inc()
		_ = d.Ack(false)
		return
	}
	// The copy's context: ended by stop, and by the connector's stop
	// while its invocations drain.
	ctx = s.copies
	if ctx.Err() != nil {
		// stop cancelled the invocation, or it failed as stop began (or
		// while a stopping connector drained it): the delivery goes back
		// for the next consumer, its failure uncounted (its copy could no
		// longer be published on the session's end).
		s.requeue(d, requeueStop)
		return
	}
	failures++
	names := s.c.cfg.Names
	headers := amqp.Table{}
	maps.Copy(headers, d.Headers)
	delete(headers, "x-death")
	headers[broker.HeaderAttempts] = int32(failures)
	headers[broker.HeaderLastStatus] = int32(status)
	headers[broker.HeaderLastError] = truncate(err.Error(), 200)
	headers[broker.HeaderTopic] = topic
	target, outcome := "", ""
	if failures >= s.c.cfg.MaxAttempts || permanent(status) {
		target, outcome = names.DLQ(s.fn), "dead_letter"
		headers[broker.HeaderFunction] = s.fn
		headers[broker.HeaderFailedAt] = time.Now().UTC().Format(time.RFC3339)
	} else {
		target, outcome = names.Retry(s.fn, s.c.delays[failures-1]), "retry"
	}
	msg := amqp.Publishing{
		Headers: headers, ContentType: d.ContentType, DeliveryMode: amqp.Persistent, MessageId: d.MessageId,
		Type: d.Type, Timestamp: d.Timestamp, AppId: d.AppId, Body: d.Body,
	}
	// The lines below are logged with the delivery span's context (ictx),
	// so they carry the event's trace_id; the copy is published on ctx.
	published := time.Now()
	if err := s.publish(ctx, target, msg); err != nil {
		// The broker did not take the copy: leave the original to be
		// redelivered rather than lose it. Not at once: a copy the broker
		// refuses at once (a full queue with reject-publish, a refused
		// declaration) had the original redelivered at once and the
		// function called again with no delay and the failure uncounted,
		// a tight loop for as long as the cause lasted. The requeue waits
		// requeueWait from the publish's start (ctx ends the wait).
		// Counted as a requeue: each is a delivery more of the message,
		// which RabbitMQ 4 counts against a quorum queue's delivery limit
		// (docs/events.md, "RabbitMQ 4"); until 2026-12-07 it was counted
		// nowhere. A stop that cancelled the publish is no invocation's
		// outcome: it counts as a requeue at a stop
		// (shop_connector_requeued_total), as the others do.
		if ctx.Err() != nil {
			s.requeue(d, requeueStop)
			return
		}
		s.c.metrics.invocations.WithLabelValues(s.fn, "requeue").Inc()
		wait := max(s.c.requeueWait()-time.Since(published), 0)
		s.c.log.WarnContext(ictx, "could not schedule retry, requeueing", "fn", s.fn, "id", d.MessageId, "err", err,
			"after", wait.Round(time.Millisecond))
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
			}
		}
		_ = d.Nack(false, true)
		return
	}
	s.c.metrics.invocations.WithLabelValues(s.fn, outcome).Inc()
	level := slog.LevelWarn
	if outcome == "dead_letter" {
		level = slog.LevelError
	}
	s.c.log.Log(ictx, level, "invocation failed", "fn", s.fn, "id", d.MessageId, "topic", topic,
		"attempt", failures, "status", status, "err", err, "next", outcome)
	_ = d.Ack(false)
}

// requeueWait is how long a delivery whose copy the broker did not take
// waits, from the copy's publish, before it goes back to its queue: the first
// retry delay, at most MaxBackoff.
func (c *Connector) requeueWait() time.Duration {
	return min(c.cfg.RetryDelay, c.cfg.MaxRetryDelay, c.cfg.MaxBackoff)
}

// permanent reports whether a function's answer says retrying cannot help,
// so the message goes to the dead-letter queue at once: the answer's status
// mapped back to an error (fnhttp.ErrorFrom) is not fault.Retryable. That is
// an event the function calls bad (400, 411, 413, 415, 422), a call it
// refuses in that form (405, 428) or a decision it made on it (409, 402,
// 412); docs/runbooks/dead-letters.md and docs/events.md list the same
// (TestTheDocsListTheStatusesDeadLetteredAtOnce). Failures of the moment (no answer, 5xx, 429) and of
// configuration (401/403: a credential to fix) are retried, and so is a 404:
// without its body it is the gateway's answer for a function being redeployed.
// Any other 4xx is dead-lettered at once too: a status fnhttp does not know
// (406, 410, 414, 431, … from a proxy; not one the shop's functions answer on
// purpose) maps back to an internal error, and was retried MAX_ATTEMPTS times
// until 2026-12-07. But for three whose answer a retry or a fix of
// configuration may change, retried: 407 (a proxy's 401), 421 (misdirected:
// internal/loopback answers it when GATEWAY_URL's host is not loopback, a
// configuration to fix as a credential is) and 425 (too early, RFC 8470).
func permanent(status int) bool {
	switch status {
	case http.StatusProxyAuthRequired, http.StatusMisdirectedRequest, http.StatusTooEarly:
		return false
	}
	err := fnhttp.ErrorFrom(status, nil)
	if status >= 400 && status < 500 && fault.KindOf(err) == fault.Internal {
		return true
	}
	return !fault.Retryable(err)
}

// publish copies msg to one of the function's own queues (a retry queue or
// its DLQ) and waits for the broker's confirmation. The copy is mandatory:
// when the queue is gone (an operator deleted it while the connector ran),
// RabbitMQ returns it instead of confirming a message it dropped. The
// function's queues are then declared again, as at subscribe, and the copy
// sent once more; any other failure leaves the caller's original unacked.
// The broker's confirmation is awaited at most InvokeTimeout (a quorum queue
// without a leader may never send it): without a deadline the delivery stayed
// unacked and every other copy of the function waited for pubMu. So is the
// declaration after a returned copy (declareAgain).
//
// The wait for a publishing channel (pubChannel) counts in InvokeTimeout: one
// opened on a connection the broker blocked is answered once the alarm
// clears, and meanwhile the delivery is requeued like one whose copy was not
// confirmed.
func (s *subscription) publish(ctx context.Context, queue string, msg amqp.Publishing) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.InvokeTimeout)
	defer cancel()
	if err := s.pubChannel(ctx); err != nil {
		return err
	}
	err := s.publishOnce(ctx, queue, msg)
	if !errors.Is(err, broker.ErrReturned) {
		return err
	}
	s.c.log.Warn("a queue of the function was missing, declaring its queues again", "fn", s.fn, "queue", queue)
	if err := s.declareAgain(ctx); err != nil {
		return err
	}
	return s.publishOnce(ctx, queue, msg)
}

// declareAgain declares the function's queues on the publishing channel,
// waiting for the broker's answers until ctx ends (publish's InvokeTimeout):
// the client waits for them with no deadline of its own, and a broker that
// stopped reading the connection since the copy was returned (a resource
// alarm) answers none until it reads it again, or the connection's heartbeat
// gives up on it. When ctx ends first, the declaration goes on in the
// background and its channel is closed once it ends (with the connection at
// the latest); the next copy opens another channel (pubChannel), since an
// answer that came late on this one would be taken for the next call's.
// Called with pubMu held.
func (s *subscription) declareAgain(ctx context.Context) error {
	ch := s.pub
	declared := make(chan error, 1)
	go func() { declared <- broker.DeclareFunction(ch, s.c.cfg.Names, s.fn, s.c.delays) }()
	select {
	case err := <-declared:
		return err
	case <-ctx.Done():
		s.pub, s.returns = nil, nil
		go func() {
			<-declared
			_ = ch.Close()
		}()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("the broker did not answer the declaration of the function's queues within %s", s.c.cfg.InvokeTimeout)
		}
		return fmt.Errorf("declare the function's queues: %w", ctx.Err())
	}
}

// openedChannel is the outcome of opening a publishing channel.
type openedChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	err     error
}

// pubChannel makes s.pub an open confirm-mode channel of the publishing
// connection, opening one when there is none (the subscription's first copy)
// or it closed (the broker closes a channel on a failed declaration). The
// open runs in a goroutine of its own, since the client's Channel waits for
// the broker's answer with no deadline: when ctx ends first, the open goes on
// and the next copy takes its channel, so at most one is under way. Called
// with pubMu held.
func (s *subscription) pubChannel(ctx context.Context) error {
	if s.pub != nil && !s.pub.IsClosed() {
		return nil
	}
	if s.opening == nil {
		opening, conn := make(chan openedChannel, 1), s.pubConn
		s.opening = opening
		go func() { opening <- openConfirmChannel(conn) }()
	}
	select {
	case o := <-s.opening:
		s.opening = nil
		if o.err != nil {
			return fmt.Errorf("open a publishing channel: %w", o.err)
		}
		s.pub, s.returns = o.ch, o.returns
		return nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("no publishing channel from the broker within %s", s.c.cfg.InvokeTimeout)
		}
		return fmt.Errorf("open a publishing channel: %w", ctx.Err())
	}
}

// openConfirmChannel opens a channel of conn in confirm mode, with its
// listener of returns.
func openConfirmChannel(conn *amqp.Connection) openedChannel {
	ch, err := conn.Channel()
	if err != nil {
		return openedChannel{err: err}
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return openedChannel{err: fmt.Errorf("confirm mode: %w", err)}
	}
	return openedChannel{ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, returnBuffer))}
}

func (s *subscription) publishOnce(ctx context.Context, queue string, msg amqp.Publishing) error {
	err := broker.PublishMandatory(ctx, s.pub, s.returns, queue, msg)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no confirmation from the broker within %s", s.c.cfg.InvokeTimeout)
	}
	return err
}

// tracerScope is the instrumentation scope of the deliveries' spans: this
// package's import path, as every span's scope is (docs/observability.md).
const tracerScope = "github.com/shopfaas/shop/internal/connector"

// deliverySpan starts the consumer span of one invocation (messaging
// semantic conventions: messaging.system rabbitmq, messaging.operation.type
// process), a child of the relay's publish span named in the message's
// headers. A message without a traceparent header (a publisher other than
// the relay) continues its envelope's traceparent instead, the trace the
// handler continues (events.Envelope.Context): a new trace here would be
// the one the invocation carries, and the delivery would span two traces.
func (c *Connector) deliverySpan(ctx context.Context, fn, topic string, attempt int, d amqp.Delivery) (context.Context, trace.Span) {
	carrier := propagation.MapCarrier{}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := broker.HeaderString(d.Headers, k); v != "" {
			carrier[k] = v
		}
	}
	if carrier["traceparent"] == "" {
		var env struct {
			TraceParent string `json:"traceparent"`
			TraceState  string `json:"tracestate"`
		}
		_ = json.Unmarshal(d.Body, &env)
		carrier = propagation.MapCarrier{"traceparent": env.TraceParent, "tracestate": env.TraceState}
	}
	ctx = otel.GetTextMapPropagator().Extract(ctx, carrier)
	// A retry comes back through the default exchange (its TTL queue
	// dead-letters to the function's queue), whose name is "": the
	// conventions name it amq.default.
	destination := d.Exchange
	if destination == "" {
		destination = "amq.default"
	}
	return otel.Tracer(tracerScope).Start(ctx, "deliver "+topic+" to "+fn,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ, semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("deliver"),
			semconv.MessagingDestinationName(destination), semconv.MessagingRabbitMQDestinationRoutingKey(topic),
			semconv.MessagingMessageID(d.MessageId),
			attribute.String("faas.invoked_name", fn),
			attribute.Int("messaging.rabbitmq.attempt", attempt)))
}

// invoke POSTs the envelope to the function through the gateway. It returns
// the status and an error for anything but 2xx (status 0: no response).
func (c *Connector) invoke(ctx context.Context, fn, topic string, attempt int, d amqp.Delivery) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimRight(c.cfg.GatewayURL, "/")+"/function/"+fn, bytes.NewReader(d.Body))
	if err != nil {
		return 0, err
	}
	ct := d.ContentType
	if ct == "" {
		ct = broker.ContentType
	}
	id := d.MessageId
	traceparent := broker.HeaderString(d.Headers, "traceparent")
	tracestate := broker.HeaderString(d.Headers, "tracestate")
	if id == "" || traceparent == "" {
		var env struct {
			ID          string `json:"id"`
			TraceParent string `json:"traceparent"`
			TraceState  string `json:"tracestate"`
		}
		_ = json.Unmarshal(d.Body, &env)
		id = cmpOr(id, env.ID)
		traceparent = cmpOr(traceparent, env.TraceParent)
		tracestate = cmpOr(tracestate, env.TraceState)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("User-Agent", "shop-rabbitmq-connector")
	req.Header.Set("X-Connector", "shop-rabbitmq-connector")
	req.Header.Set("X-Topic", topic)
	req.Header.Set("Ce-Id", id)
	req.Header.Set("X-Event-Id", id)
	req.Header.Set("Ce-Type", topic)
	req.Header.Set("X-Attempt", strconv.Itoa(attempt))
	// The relay's signature of the body (internal/events) goes on unchanged:
	// the function checks it, so the connector needs no key.
	if sig := broker.HeaderString(d.Headers, strings.ToLower(events.SignatureHeader)); sig != "" {
		req.Header.Set(events.SignatureHeader, sig)
	}
	if c.cfg.InternalToken != "" {
		req.Header.Set(auth.InternalHeader, c.cfg.InternalToken)
	}
	// Every handler records the event id in its inbox in the transaction of
	// its effect and skips an event it has seen (internal/inbox): a delivery
	// may be sent again.
	gatewayurl.MarkReplayable(req.Header)
	// The delivery span's context continues the trace; without a propagator
	// (tests) the message's own trace context is passed on unchanged.
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	if req.Header.Get("traceparent") == "" && traceparent != "" {
		req.Header.Set("traceparent", traceparent)
		if tracestate != "" {
			req.Header.Set("tracestate", tracestate)
		}
	}
	res, err := c.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("gateway unreachable: %w", err)
	}
	defer res.Body.Close()
	var answer error
	if res.StatusCode < 200 || res.StatusCode > 299 {
		answer = failed(res)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, answer
}

// maxProblem bounds the part of a failed answer read for its problem's code:
// a function's problem body is a few hundred bytes.
const maxProblem = 4 << 10

// failed is the error of a function's answer that is not 2xx: "function
// answered <status>", followed by the code of its problem body
// (application/problem+json, fnhttp.Problem), "function answered 422
// event_expired", so the dead letter's shop-last-error tells on-call which
// refusal it was without the function's logs. Only a code with the shop's
// syntax (fault.Code.Valid, at most 64 bytes) is repeated: the body is the
// function's, or a proxy's, and no other byte of it reaches the header.
func failed(res *http.Response) error {
	mt, _, _ := strings.Cut(res.Header.Get("Content-Type"), ";")
	if strings.EqualFold(strings.TrimSpace(mt), "application/problem+json") {
		body, _ := io.ReadAll(io.LimitReader(res.Body, maxProblem))
		var p fnhttp.Problem
		if json.Unmarshal(body, &p) == nil && fault.Code(p.Code).Valid() {
			return fmt.Errorf("function answered %d %s", res.StatusCode, p.Code)
		}
	}
	return fmt.Errorf("function answered %d", res.StatusCode)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
