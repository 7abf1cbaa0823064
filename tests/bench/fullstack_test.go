package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/openfaas/go-sdk/stack"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/dev/load"
	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/connector"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// checkoutFunctions are the functions a checkout calls synchronously: the
// saga's and get-product, which prices every line (commit-stock is no longer
// one: the sweep sells a confirmed order's hold later).
var checkoutFunctions = []string{"create-order", "get-product", "reserve-stock", "charge-payment"}

// eventHandlers are the functions subscribed to the events a checkout causes
// (stack.yml topics): their effect is what the event lag is measured to.
var eventHandlers = []string{"update-product-stats", "notify-user", "index-product"}

// connectorRetry is the connector's retry schedule in the full-stack run
// (short, so a failing handler shows within the run; its queues are deleted
// afterwards).
var connectorRetry = connector.Config{RetryDelay: time.Second, MaxAttempts: 3}

// fullStack is the second runtime: every function of stack.yml, the outbox
// relay and the RabbitMQ connector, as `make run` runs them, on databases,
// Redis keys and broker names of its own.
type fullStack struct {
	rt        *runtimetest.Runtime
	db        map[string]string // service → database URL
	all       []string          // every function
	idleRSS   []rss
	loadRSS   []rss
	full      load.Result
	half      load.Result
	halfRate  float64
	cpu       cpuUse
	lagFull   []lagRow
	lagHalf   []lagRow
	drainFull time.Duration
	drainHalf time.Duration
	r3        reference // around the full-speed run
}

// lagRow is the event lag of one handler: from the commit of the event it
// handles to its effect.
type lagRow struct {
	handler string
	event   string
	lag     *load.Histogram
	missing int
}

// startFullStack starts the second runtime and seeds it like the first.
func (s *bench) startFullStack(ctx context.Context, prefix string) *fullStack {
	b := s.b
	st, err := stackfile.LoadEnv(filepath.Join(runtimetest.Root(b), "stack.yml"), func(k string) string {
		if k == "SHOP_ENV" {
			return "development"
		}
		return os.Getenv(k)
	})
	if err != nil {
		b.Fatal(err)
	}
	fs := &fullStack{db: map[string]string{}, all: stackfile.Names(st)}
	env := map[string]string{
		"REDIS_ADDR":           "127.0.0.1:6379",
		"CART_KEY_PREFIX":      prefix + "full:cart:",
		"PRODUCT_CACHE_PREFIX": prefix + "full:product:",
		"MEILI_URL":            "",
		"PAYMENT_SIM_LATENCY":  "0s",
		"LOG_LEVEL":            "warn",
		"RETRY_DELAY":          connectorRetry.RetryDelay.String(),
		"MAX_ATTEMPTS":         fmt.Sprint(connectorRetry.MaxAttempts),
		"REFRESH_INTERVAL":     "500ms",
	}
	for _, svc := range []string{"USERS", "CATALOG", "INVENTORY", "PAYMENTS", "ORDERS"} {
		fs.db[svc] = pgtest.NewDatabase(b)
		env[svc+"_DATABASE_URL"] = fs.db[svc]
	}
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd)
	names := broker.Names{Prefix: "bench-" + hex.EncodeToString(rnd) + "."}
	env["EXCHANGE_PREFIX"] = names.Prefix
	b.Cleanup(func() { deleteBrokerNames(b, names, st.Functions) })
	fs.rt = runtimetest.Start(b, runtimetest.Options{Functions: fs.all, Connectors: []string{"outbox-relay", "rabbitmq"},
		Env: withProfiling(env), ReadyTimeout: 3 * time.Minute})
	return fs
}

// deleteBrokerNames removes the run's exchanges and the queues the connector
// declared for every subscribed function.
func deleteBrokerNames(b testing.TB, names broker.Names, fns map[string]stack.Function) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, broker.DefaultURL, "shop-test")
	if err != nil {
		b.Logf("broker cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Logf("broker cleanup: %v", err)
		return
	}
	for name := range fns {
		_, _ = ch.QueueDelete(names.Queue(name), false, false, false)
		_, _ = ch.QueueDelete(names.DLQ(name), false, false, false)
		for _, d := range connectorRetry.Delays() {
			_, _ = ch.QueueDelete(names.Retry(name, d), false, false, false)
		}
	}
	_, _ = ch.QueueDelete(names.Unrouted(), false, false, false)
	_ = ch.ExchangeDelete(names.Exchange(), false, false)
	_ = ch.ExchangeDelete(names.Unrouted(), false, false)
}

// runFullStack measures the full stack: idle RSS, orders at full speed with
// every event handled (throughput, latency, CPU per order until the last
// event's effect, event lag) between two runs of r3 (its reference), then
// orders paced at half that rate (event lag), then RSS after the load.
func (s *bench) runFullStack(ctx context.Context, fs *fullStack, pg *pgCluster, r3 func(when string) load.Result) {
	b := s.b
	// The second runtime has secrets of its own: its tokens sign the orders.
	tokens, err := auth.ParseSigner(fs.rt.ReadSecret(b, "jwt-signing-key"), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	defer func(t *auth.Signer) { s.tokens = t }(s.tokens)
	s.tokens = tokens
	time.Sleep(2 * time.Second) // let start-up settle before the idle figure
	fs.idleRSS = s.memory(fs.rt, fs.all)
	products, _, _ := s.seed(ctx, fs.db["CATALOG"], fs.db["INVENTORY"])
	for _, p := range products {
		s.setStockAt(ctx, fs.rt, p, 1_000_000)
	}
	groups := fullStackGroups(fs, pg, s.redis)
	customers := s.customerTokens() // the warm-up's, the full run's and the paced run's
	order := orderRequests(customers, fs.rt.GatewayURL+"/function/create-order/api/v1/orders", func(n int) uuid.UUID {
		return products[n%len(products)]
	})
	created := func(st int) bool { return st == http.StatusCreated }

	s.warmUp(ctx, fs.rt.GatewayURL+"/function/create-order/api/v1/orders", products, customers)
	// Wait until the seeding's and the warm-up's events have been handled
	// (which also warms the handlers up).
	s.drain(ctx, fs, time.Time{})
	fs.r3.before = r3("before full stack")
	since := time.Now()
	before := cpuSample(groups)
	fs.full = s.run(ctx, "create-order full stack (gateway)", "", created, load.Config{Request: order})
	fs.drainFull = s.drain(ctx, fs, since)
	fs.cpu = cpuDelta(before, cpuSample(groups), groups)
	fs.lagFull = s.eventLag(ctx, fs, since)
	fs.r3.after = r3("after full stack")

	fs.halfRate = fs.full.RPS() / 2
	if fs.halfRate > 0 {
		interval := time.Duration(float64(time.Second) / fs.halfRate)
		since = time.Now()
		start := since
		paced := func(w, n int) (*http.Request, error) {
			time.Sleep(time.Until(start.Add(time.Duration(n) * interval)))
			return order(w, n)
		}
		fs.half = s.run(ctx, fmt.Sprintf("create-order full, %.0f/s paced", fs.halfRate), "half the full-stack rate",
			created, load.Config{Request: paced})
		fs.drainHalf = s.drain(ctx, fs, since)
		fs.lagHalf = s.eventLag(ctx, fs, since)
	}
	fs.loadRSS = s.memory(fs.rt, fs.all)
}

// fullStackGroups are the process groups whose CPU the full-stack scenario
// reports.
func fullStackGroups(fs *fullStack, pg *pgCluster, redis procGroup) []procGroup {
	var groups []procGroup
	named := append(slices.Clone(checkoutFunctions), eventHandlers...)
	for _, n := range named {
		groups = append(groups, procGroup{name: "function " + n, pids: functionPids(fs.rt, n)})
	}
	var rest []string
	for _, n := range fs.all {
		if !slices.Contains(named, n) {
			rest = append(rest, n)
		}
	}
	return append(append(groups,
		procGroup{name: fmt.Sprintf("other %d functions (idle)", len(rest)), pids: functionPids(fs.rt, rest...)},
		procGroup{name: "outbox-relay", pids: connectorPids(fs.rt, "outbox-relay")},
		procGroup{name: "rabbitmq connector", pids: connectorPids(fs.rt, "rabbitmq")},
		procGroup{name: rabbitGroup, pids: rabbitPids},
		redis,
		procGroup{name: pgBackends, pids: pg.pids(true)},
		procGroup{name: pgRestGroup, pids: pg.pids(false)},
		procGroup{name: benchGroup, pids: selfPid},
	), pg.shares(pg.labels()...)...)
}

// drain waits (at most a minute) until every order.placed.v1 and
// stock.changed.v1 (written only when a product sells out or comes back, so
// index-product's rows count few) committed since since has been handled by
// its subscribers, and returns how long it waited.
func (s *bench) drain(ctx context.Context, fs *fullStack, since time.Time) time.Duration {
	start := time.Now()
	deadline := start.Add(time.Minute)
	for {
		pending := 0
		for _, l := range s.eventLag(ctx, fs, since) {
			pending += l.missing
		}
		if pending == 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			s.b.Errorf("events not handled within a minute: %d effects missing", pending)
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventLag measures, for each handler, the time from the commit of every
// event it subscribes to (the outbox row's created_at, the producing
// transaction's start) to its effect (processed_events.processed_at, the
// handler's transaction start), for events committed since since.
func (s *bench) eventLag(ctx context.Context, fs *fullStack, since time.Time) []lagRow {
	placed := s.outboxTimes(ctx, fs.db["ORDERS"], events.OrderPlaced, since)
	stock := s.outboxTimes(ctx, fs.db["INVENTORY"], events.StockChanged, since)
	catalog := s.processedTimes(ctx, fs.db["CATALOG"])
	users := s.processedTimes(ctx, fs.db["USERS"])
	var out []lagRow
	for _, c := range []struct {
		handler, event string
		sent           map[uuid.UUID]time.Time
		done           map[string]map[uuid.UUID]time.Time
	}{
		{"update-product-stats", events.OrderPlaced, placed, catalog},
		{"notify-user", events.OrderPlaced, placed, users},
		{"index-product", events.StockChanged, stock, catalog},
	} {
		r := lagRow{handler: c.handler, event: c.event, lag: load.NewHistogram()}
		for id, at := range c.sent {
			got, ok := c.done[c.handler][id]
			if !ok {
				r.missing++
				continue
			}
			r.lag.Record(max(got.Sub(at), 0))
		}
		out = append(out, r)
	}
	return out
}

func (s *bench) query(ctx context.Context, url, sql string, args []any, row func(pgx.Rows) error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		s.b.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, sql, args...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return // undefined_table: the function that owns the database has not migrated it yet: no rows
	}
	if err != nil {
		s.b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			s.b.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		s.b.Fatal(err)
	}
}

// outboxTimes are the events of type committed since since, by id.
func (s *bench) outboxTimes(ctx context.Context, url, typ string, since time.Time) map[uuid.UUID]time.Time {
	out := map[uuid.UUID]time.Time{}
	s.query(ctx, url, `SELECT id, created_at FROM outbox WHERE type = $1 AND created_at >= $2`, []any{typ, since},
		func(r pgx.Rows) error {
			var id uuid.UUID
			var at time.Time
			err := r.Scan(&id, &at)
			out[id] = at
			return err
		})
	return out
}

// processedTimes are the consumers' processed events, by consumer and id.
func (s *bench) processedTimes(ctx context.Context, url string) map[string]map[uuid.UUID]time.Time {
	out := map[string]map[uuid.UUID]time.Time{}
	s.query(ctx, url, `SELECT event_id, consumer, processed_at FROM processed_events`, nil, func(r pgx.Rows) error {
		var id uuid.UUID
		var consumer string
		var at time.Time
		err := r.Scan(&id, &consumer, &at)
		if out[consumer] == nil {
			out[consumer] = map[uuid.UUID]time.Time{}
		}
		out[consumer][id] = at
		return err
	})
	return out
}

// printFullStack writes the full-stack figures.
func printFullStack(w io.Writer, fs *fullStack) {
	if fs == nil {
		return
	}
	fmt.Fprintf(w, "\nfull stack (every stack.yml function, outbox-relay, rabbitmq connector; orders through the gateway):\n")
	ratio := func(r load.Result) string {
		if fs.r3.rps() == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f", r.RPS()/fs.r3.rps())
	}
	fmt.Fprintf(w, "  full speed: %.1f orders/s (%s x R3), p50 %s ms, p99 %s ms, events drained %.1fs after the last answer\n",
		fs.full.RPS(), ratio(fs.full), msf(fs.full.Latency.Quantile(0.5)), msf(fs.full.Latency.Quantile(0.99)), fs.drainFull.Seconds())
	fmt.Fprintf(w, "  paced at half (%.1f/s): %.1f orders/s, p50 %s ms, p99 %s ms, events drained %.1fs after the last answer\n",
		fs.halfRate, fs.half.RPS(), msf(fs.half.Latency.Quantile(0.5)), msf(fs.half.Latency.Quantile(0.99)), fs.drainHalf.Seconds())
	fmt.Fprintf(w, "  %-22s %-18s %7s %12s %12s %7s %12s %12s\n", "event lag (commit ->", "effect)", "full n", "full p50 ms",
		"full p99 ms", "half n", "half p50 ms", "half p99 ms")
	for i, l := range fs.lagFull {
		h := lagRow{lag: load.NewHistogram()}
		if i < len(fs.lagHalf) {
			h = fs.lagHalf[i]
		}
		fmt.Fprintf(w, "  %-22s %-18s %7d %12s %12s %7d %12s %12s\n", l.handler, l.event, l.lag.Count(), lagMs(l, 0.5),
			lagMs(l, 0.99), h.lag.Count(), lagMs(h, 0.5), lagMs(h, 0.99))
	}
}

// lagMs is l's quantile q in ms, or "-" when l saw no event (index-product
// sees stock.changed.v1 only when a product sells out or comes back).
func lagMs(l lagRow, q float64) string {
	if l.lag.Count() == 0 {
		return "-"
	}
	return msf(l.lag.Quantile(q))
}

// printRSS writes the idle and after-load memory of every function replica
// and the medians: RSS, and of it the process's own memory (RssAnon) and its
// proportional share (Pss) — the functions run one multi-call binary whose
// file-backed pages are in every replica's RSS but in memory once.
func printRSS(w io.Writer, fs *fullStack) {
	if fs == nil || len(fs.idleRSS) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%-28s %10s %10s %10s %10s %10s %10s\n", "MiB per replica", "idle RSS", "anon", "PSS",
		"load RSS", "anon", "PSS")
	mib := func(kib, n int) float64 { return float64(kib) / 1024 / float64(n) }
	var cols [6][]float64
	for i, m := range fs.idleRSS {
		if m.replicas == 0 {
			continue
		}
		v := []float64{mib(m.kib, m.replicas), mib(m.anonKiB, m.replicas), mib(m.pssKiB, m.replicas)}
		if i < len(fs.loadRSS) && fs.loadRSS[i].replicas > 0 {
			l := fs.loadRSS[i]
			v = append(v, mib(l.kib, l.replicas), mib(l.anonKiB, l.replicas), mib(l.pssKiB, l.replicas))
		}
		fmt.Fprintf(w, "%-28s", m.name)
		for j, x := range v {
			cols[j] = append(cols[j], x)
			fmt.Fprintf(w, " %10.1f", x)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-28s", fmt.Sprintf("median (%d functions)", len(cols[0])))
	for _, c := range cols {
		fmt.Fprintf(w, " %10.1f", median(c))
	}
	fmt.Fprintln(w)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
