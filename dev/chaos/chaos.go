// Package chaos runs the whole local stack against a private PostgreSQL
// cluster and a private RabbitMQ node, drives customers through the edge
// (orders with idempotency keys, some cards declined, some cancellations)
// while it SIGKILLs random function and connector processes and restarts
// PostgreSQL and RabbitMQ (stop_app/start_app and a hard kill), then waits for
// the shop to settle and checks its invariants through the API and the
// databases. cmd/chaos is its command line; `make chaos` and
// `make chaos-short` call it.
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal"
	"github.com/shopfaas/shop/dev/faaslocal/secrets"
	"github.com/shopfaas/shop/dev/faaslocal/supervisor"
	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/broker/rabbitnode"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/postgres"
)

// Options tune a run. Zero values take the defaults of the long form.
type Options struct {
	// Root is the repository (default: the working directory).
	Root string
	// Duration is how long customers place orders under chaos (default 3m).
	Duration time.Duration
	// Customers is the number of concurrent customers (default 6).
	Customers int
	// KillEvery is the mean interval between process kills (default 1.5s).
	KillEvery time.Duration
	// PGRestarts and RabbitRestarts are spread over Duration (default 3 each).
	PGRestarts, RabbitRestarts int
	// Settle bounds the wait for the shop to settle afterwards (default 5m).
	Settle time.Duration
	// AnswerWithin bounds the retries of one request (default 5m: longer
	// than any planned outage, a PostgreSQL stop waits up to 2m and a
	// RabbitMQ boot may take one); a request still without a definite
	// answer then fails the run.
	AnswerWithin time.Duration
	// Products is the number of products (default 5), each with Stock units
	// but the first, which has ScarceStock (default 20): it sells out under
	// the kills and restarts, so that the refusals of stock that is gone are
	// tested there too, and the run must see some.
	Products, Stock, ScarceStock int
	// GatewayAddr and EdgeAddr are the local runtime's listeners (default
	// 127.0.0.1:8200 and 127.0.0.1:8201).
	GatewayAddr, EdgeAddr string
	// Out receives progress and the summary (default os.Stdout).
	Out io.Writer
	// Verbose echoes every process's output.
	Verbose bool
}

func (o *Options) defaults() {
	if o.Root == "" {
		o.Root, _ = os.Getwd()
	}
	if o.Duration <= 0 {
		o.Duration = 3 * time.Minute
	}
	if o.Customers <= 0 {
		o.Customers = 6
	}
	if o.KillEvery <= 0 {
		o.KillEvery = 1500 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = 5 * time.Minute
	}
	if o.AnswerWithin <= 0 {
		o.AnswerWithin = 5 * time.Minute
	}
	if o.Products <= 0 {
		o.Products = 5
	}
	if o.ScarceStock <= 0 {
		o.ScarceStock = 20
	}
	if o.Stock <= 0 {
		o.Stock = 100000
	}
	if o.GatewayAddr == "" {
		o.GatewayAddr = "127.0.0.1:8200"
	}
	if o.EdgeAddr == "" {
		o.EdgeAddr = "127.0.0.1:8201"
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
}

// consumers are the event-driven functions: their queues must be empty once
// the shop has settled.
var consumers = []string{"notify-user", "update-product-stats", "index-product"}

// declineEvery is the share of checkouts paid with a card the simulator
// declines: every fifth checkout of the run.
const declineEvery = 5

// Counters are what the run did.
type Counters struct {
	Kills, PGRestarts, RabbitStops, RabbitKills atomic.Int64
	// PGRevived counts the times a planned restart found PostgreSQL dead on
	// its own (no signal sent); such a restart is not a PGRestart.
	PGRevived                               atomic.Int64
	Requests, Responses5xx, TransportErrors atomic.Int64
}

// order is one customer's checkout as the client saw it.
type order struct {
	user     uuid.UUID
	token    string
	key      string
	product  uuid.UUID
	quantity int
	declined bool // paid with a card the simulator declines
	status   int  // the definite answer to POST /orders
	// outOfStock: that answer was 409 out_of_stock.
	outOfStock bool
	id         uuid.UUID
	cancel     int // the definite answer to the cancel, 0 when not cancelled
	// cancelRetried: the cancel got an answer that was not definite (5xx, a
	// transport error) before its definite one, so a cancellation that
	// went through may have been answered 409 not_cancellable at the retry.
	cancelRetried bool
	// cancelTried: a cancel was sent (cancel 0 then means it never got a
	// definite answer).
	cancelTried bool
	// warm: placed before the load and the kills (run.warm), not counted
	// as an order the run confirmed.
	warm bool
}

// Run runs the chaos suite and reports whether every invariant held.
func Run(ctx context.Context, o Options) (bool, error) {
	o.defaults()
	r := &run{o: o, log: o.Out}
	defer r.cleanup()
	if err := r.setup(ctx); err != nil {
		return false, err
	}
	if err := r.warm(ctx); err != nil {
		r.printAnswers()
		r.printErrorLines()
		return false, err
	}
	r.drive(ctx)
	if ctx.Err() != nil {
		return false, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return r.check(ctx)
}

type run struct {
	o       Options
	log     io.Writer
	logMu   sync.Mutex
	tmp     string
	pg      *cluster
	rabbit  *rabbitnode.Node
	rt      *faaslocal.Runtime
	tokens  *auth.Signer
	n       Counters
	mu      sync.Mutex
	orders  []*order
	placed  atomic.Int64 // checkouts begun, numbering them for declineEvery
	stock   map[uuid.UUID]int
	scarce  uuid.UUID // the product with ScarceStock units, the only one that may run out
	closers []func()
	killed  map[string]int // the kills sent, by function or connector (under mu)
	answers answerTally    // the answers that were not definite, by kind
	errTail *errorTail     // the processes' last lines at error level
}

func (r *run) printf(format string, args ...any) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	fmt.Fprintf(r.log, "chaos %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

func (r *run) cleanup() {
	for _, c := range slices.Backward(r.closers) {
		c()
	}
	if r.tmp != "" {
		_ = os.RemoveAll(r.tmp)
	}
}

func (r *run) setup(ctx context.Context) error {
	var err error
	if r.tmp, err = os.MkdirTemp("", "shop-chaos-"); err != nil {
		return err
	}
	_ = os.Chmod(r.tmp, 0o755)
	pgPort, err := rabbitnode.FreePort()
	if err != nil {
		return err
	}
	r.printf("starting a private PostgreSQL on 127.0.0.1:%d", pgPort)
	if r.pg, err = startCluster(ctx, filepath.Join(r.tmp, "pg"), pgPort, r.printf); err != nil {
		return err
	}
	r.closers = append(r.closers, func() {
		if err := r.pg.Close(); err != nil {
			r.printf("stop PostgreSQL: %v", err)
		}
	})
	// The node boots and the binaries build at the same time.
	r.printf("starting a private RabbitMQ node; building the functions and connectors")
	rabbitErr := make(chan error, 1)
	go func() {
		var err error
		r.rabbit, err = rabbitnode.Start(ctx, rabbitnode.Options{Dir: mkdir(filepath.Join(r.tmp, "rabbit"))})
		rabbitErr <- err
	}()
	bin := filepath.Join(r.tmp, "bin")
	build := func(pkg string) (string, error) {
		out := filepath.Join(bin, filepath.Base(pkg))
		var b bytes.Buffer
		if err := faaslocal.GoBuild(ctx, r.o.Root, pkg, out, &b); err != nil {
			return "", fmt.Errorf("%w\n%s", err, b.String())
		}
		return out, nil
	}
	fnBin, buildErr := build("./cmd/shop-functions")
	var connectors []faaslocal.Connector
	for _, c := range []string{"rabbitmq", "outbox-relay", "scheduler"} {
		if buildErr != nil {
			break
		}
		var p string
		p, buildErr = build("./connectors/" + c)
		connectors = append(connectors, faaslocal.Connector{Name: c, Path: p})
	}
	if err := <-rabbitErr; err != nil {
		return err
	}
	r.closers = append(r.closers, func() { _ = r.rabbit.Close() })
	if buildErr != nil {
		return buildErr
	}
	r.printf("RabbitMQ %s on 127.0.0.1:%d", r.rabbit.Name(), r.rabbit.Port())
	state := mkdir(filepath.Join(r.tmp, "state"))
	store, err := secrets.Open(state)
	if err != nil {
		return err
	}
	if err := store.CreateDevelopment(); err != nil {
		return err
	}
	prefix := "chaos:" + uuid.NewString()[:8] + ":"
	env := map[string]string{
		"USERS_DATABASE_URL":     r.pg.URL("shop_users"),
		"CATALOG_DATABASE_URL":   r.pg.URL("shop_catalog"),
		"ORDERS_DATABASE_URL":    r.pg.URL("shop_orders"),
		"INVENTORY_DATABASE_URL": r.pg.URL("shop_inventory"),
		"PAYMENTS_DATABASE_URL":  r.pg.URL("shop_payments"),
		"RABBITMQ_URL":           r.rabbit.URL(),
		"CART_KEY_PREFIX":        prefix + "cart:",
		"PRODUCT_CACHE_PREFIX":   prefix + "product:",
		"MEILI_URL":              "",
		"METRICS_ADDR":           "off",
		// Outages last seconds: retry often enough, long enough, that no
		// event is dead-lettered by a restart.
		"RETRY_DELAY":     "1s",
		"MAX_RETRY_DELAY": "15s",
		"MAX_ATTEMPTS":    "12",
		// An order left pending by a killed create-order is driven by
		// recover-orders (every minute) once it is this old: 30s instead of
		// the default 2m (it must exceed a drive's longest, SAGA_TIMEOUT
		// 20s + 7s: saga.LongestDrive), so the shop settles a minute or two
		// sooner after the load.
		"RECOVER_AFTER": "30s",
		// A create-order killed between its reservation and its order's
		// write (they run at once) leaves a hold without an order, given
		// back once past its TTL: 30s (reserve-stock's least) instead of
		// 15m, so the shop settles within the wait.
		"HOLD_TTL": "30s",
	}
	// Every process's output goes through errorTail, which keeps the first
	// and last lines at error level for a failed run's summary.
	r.errTail = &errorTail{max: 15}
	var out io.Writer = r.errTail
	if r.o.Verbose {
		out = io.MultiWriter(r.o.Out, r.errTail)
	} else {
		// faas-provider (its proxy still carries streams) logs every
		// failed call with the standard logger: under chaos that is
		// thousands of lines. The gateway's own forwarder logs to Log.
		log.SetOutput(io.Discard)
	}
	stack, err := stackfile.Load(filepath.Join(r.o.Root, "stack.yml"))
	if err != nil {
		return err
	}
	cfg := faaslocal.Config{Functions: stackfile.Names(stack),
		Root: r.o.Root, StackFile: "stack.yml", KongFile: "gateway/kong.yml", StateDir: state,
		GatewayAddr: r.o.GatewayAddr, EdgeAddr: r.o.EdgeAddr, Binary: fnBin, Connectors: connectors,
		Env: env, Stdout: out, StopGrace: 5 * time.Second,
		Log: slog.New(slog.NewTextHandler(out, nil)),
	}
	r.printf("starting the local runtime (gateway %s, edge %s)", r.o.GatewayAddr, r.o.EdgeAddr)
	if r.rt, err = faaslocal.Start(ctx, cfg); err != nil {
		return err
	}
	r.closers = append(r.closers, func() {
		if err := r.rt.Close(); err != nil {
			r.printf("stop the local runtime: %v", err)
		}
	})
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := r.rt.WaitReady(wctx, r.deployed()...); err != nil {
		return err
	}
	// The connector binds the handlers' queues one after another once it
	// starts: an order placed before update-product-stats' queue is bound
	// would never reach it (a short run in CI once began within that
	// window and ended with sold_count short of the confirmed units).
	if err := r.rt.WaitSubscribed(wctx); err != nil {
		return err
	}
	r.printf("%d functions ready, every event handler subscribed", len(r.deployed()))
	key, err := r.rt.Secret("jwt-signing-key")
	if err != nil {
		return err
	}
	if r.tokens, err = auth.ParseSigner(key, 24*time.Hour); err != nil {
		return err
	}
	return r.seed(ctx)
}

// deployed lists the functions the runtime runs.
func (r *run) deployed() []string {
	var out []string
	for _, fn := range r.rt.Known() {
		if r.rt.Replicas(fn) != nil {
			out = append(out, fn)
		}
	}
	return out
}

func mkdir(p string) string {
	_ = os.MkdirAll(p, 0o755)
	return p
}

// seed creates the products in the catalog and stocks them through the edge.
func (r *run) seed(ctx context.Context) error {
	pool, err := postgres.Open(ctx, postgres.Config{URL: r.pg.URL("shop_catalog"), MaxConns: 2, Migrations: catalogdb.Migrations(), CreateDatabase: true})
	if err != nil {
		return err
	}
	defer pool.Close()
	admin, err := r.tokens.Issue(uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	if err != nil {
		return err
	}
	r.stock = map[uuid.UUID]int{}
	for i := range r.o.Products {
		p, err := catalog.NewProduct(catalog.Draft{SKU: fmt.Sprintf("CHAOS-%d", i), Name: fmt.Sprintf("Chaos item %d", i),
			Category: "chaos", Price: catalog.Money{Amount: int64(500 + 100*i), Currency: "USD"}}, time.Now())
		if err != nil {
			return err
		}
		if p, err = catalogdb.New(pool).Create(ctx, p); err != nil {
			return err
		}
		units := r.o.Stock
		if i == 0 {
			units, r.scarce = r.o.ScarceStock, p.ID
		}
		code, _, err := r.callWith(ctx, http.MethodPut, "/api/v1/inventory/"+p.ID.String(), admin,
			map[string]string{"If-None-Match": "*"}, map[string]int{"on_hand": units}) // never stocked: a first write
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("stock %s: %d %v", p.ID, code, err)
		}
		r.stock[p.ID] = units
	}
	r.printf("seeded %d products with %d units each, the first with %d", r.o.Products, r.o.Stock, r.o.ScarceStock)
	return nil
}

// call sends one request through the edge, with an Idempotency-Key unless
// key is empty.
func (r *run) call(ctx context.Context, method, path, token, key string, body any) (int, []byte, error) {
	var header map[string]string
	if key != "" {
		header = map[string]string{"Idempotency-Key": key}
	}
	return r.callWith(ctx, method, path, token, header, body)
}

// callWith sends one request through the edge with extra headers.
func (r *run) callWith(ctx context.Context, method, path, token string, header map[string]string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.rt.EdgeURL()+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	r.n.Requests.Add(1)
	res, err := httpClient.Do(req)
	if err != nil {
		r.n.TransportErrors.Add(1)
		r.answers.add(method, path, 0, nil, err)
		return 0, nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode >= 500 {
		r.n.Responses5xx.Add(1)
	}
	if !definite(res.StatusCode, b) {
		r.answers.add(method, path, res.StatusCode, b, nil)
	}
	return res.StatusCode, b, nil
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// definite calls until the answer is neither a transport error, a 5xx nor a
// 429: the same request (and Idempotency-Key) is sent again, as a careful
// client does.
func (r *run) definite(ctx context.Context, method, path, token, key string, body any) (int, []byte) {
	code, b, _ := r.definiteTries(ctx, method, path, token, key, body)
	return code, b
}

// definiteTries is definite, and reports whether an earlier try got an
// answer that was not definite.
func (r *run) definiteTries(ctx context.Context, method, path, token, key string, body any) (int, []byte, bool) {
	return untilDefinite(ctx, r.o.AnswerWithin, 300*time.Millisecond, func() (int, []byte, error) {
		return r.call(ctx, method, path, token, key, body)
	})
}

// untilDefinite calls try, pausing between tries, until its answer is
// neither an error, a 5xx, a 429 nor a 409 request_in_progress, or until
// within has passed since the first try: the run's context ends only on a
// signal, so a request that never gets a definite answer would hang the run
// (and make test) instead of failing it. The answer is then 0, which the
// verdicts report ("every order final").
func untilDefinite(ctx context.Context, within, pause time.Duration, try func() (int, []byte, error)) (int, []byte, bool) {
	deadline := time.Now().Add(within)
	for retried := false; ; retried = true {
		code, b, err := try()
		if err == nil && definite(code, b) {
			return code, b, retried
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return 0, nil, retried
		}
		time.Sleep(pause)
	}
}

// drive runs the customers and the chaos for Duration, and longer when a
// planned restart has not happened yet (a loaded machine boots RabbitMQ in
// a minute or more): the load and the kills go on until every restart is done.
func (r *run) drive(ctx context.Context) {
	r.printf("customers: %d for %s; a kill every ~%s, %d PostgreSQL and %d RabbitMQ restarts",
		r.o.Customers, r.o.Duration, r.o.KillEvery, r.o.PGRestarts, r.o.RabbitRestarts)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for range r.o.Customers {
		wg.Go(func() { r.customer(lctx, ctx) })
	}
	var chaos sync.WaitGroup
	chaos.Go(func() { r.killer(lctx) })
	var restarts sync.WaitGroup
	restarts.Go(func() { r.restartPG(ctx) })
	restarts.Go(func() { r.restartRabbit(ctx) })
	select {
	case <-ctx.Done():
	case <-time.After(r.o.Duration):
	}
	restarts.Wait()
	stop()
	chaos.Wait()
	wg.Wait()
	r.printf("load over: %d orders placed", len(r.orders))
}

// customer places orders until dctx ends; a checkout already begun is
// finished (to a definite answer) on ctx.
func (r *run) customer(dctx, ctx context.Context) {
	products := r.products()
	for dctx.Err() == nil {
		if o, _ := r.place(ctx, products[rand.IntN(len(products))], true, false); o == nil {
			return
		}
	}
}

// products are the seeded products, in a fixed order.
func (r *run) products() []uuid.UUID {
	products := make([]uuid.UUID, 0, len(r.stock))
	for id := range r.stock {
		products = append(products, id)
	}
	slices.SortFunc(products, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return products
}

// place places one order of 1 to 3 units of product for a new customer, to
// a definite answer on ctx, and with mayCancel cancels a quarter of those
// placed; warm marks the order placed before the chaos (run.warm). It
// returns the order and the checkout's answer body; nil when no token could
// be issued.
func (r *run) place(ctx context.Context, product uuid.UUID, mayCancel, warm bool) (*order, []byte) {
	o := &order{user: uuid.Must(uuid.NewV7()), key: uuid.NewString(), product: product,
		quantity: 1 + rand.IntN(3), declined: r.placed.Add(1)%declineEvery == 0, warm: warm}
	tok, err := r.tokens.Issue(o.user, auth.RoleCustomer)
	if err != nil {
		r.printf("token: %v", err)
		return nil, nil
	}
	o.token = tok
	card := "tok_visa"
	if o.declined {
		card = "tok_chargeDeclined"
	}
	body := map[string]any{
		"items":            []map[string]any{{"product_id": o.product, "quantity": o.quantity}},
		"shipping_address": map[string]string{"name": "Chaos", "line1": "1 Loop Rd", "city": "Springfield", "postal_code": "12345", "country": "US"},
		"payment":          map[string]string{"token": card},
	}
	r.mu.Lock()
	r.orders = append(r.orders, o)
	r.mu.Unlock()
	code, b := r.definite(ctx, http.MethodPost, "/api/v1/orders", o.token, o.key, body)
	o.status = code
	o.outOfStock = code == http.StatusConflict && bytes.Contains(b, []byte(`"out_of_stock"`))
	var v struct {
		ID uuid.UUID `json:"id"`
	}
	_ = json.Unmarshal(b, &v)
	o.id = v.ID
	if mayCancel && (code == http.StatusCreated || code == http.StatusAccepted) && rand.IntN(4) == 0 {
		o.cancelTried = true
		o.cancel, _, o.cancelRetried = r.definiteTries(ctx, http.MethodPost, "/api/v1/orders/"+o.id.String()+"/cancel", o.token, "", nil)
	}
	return o, b
}

// warm places the run's first order, of a plentiful product, before the
// load and the kills begin, and wants it placed (201, or 202 when a service
// it needs stayed unavailable for the saga's timeout: recovery finishes it):
// the functions on the checkout's path build on their first request
// (fnserve) and their databases are created and migrated then, so a cold
// checkout takes seconds on a loaded machine, and a kill of create-order
// within them left the first checkout of every customer waiting out its
// Idempotency-Key's lease (the saga timeout and 10 s: the whole of a short
// run). The landing CI of 2026-12-07 lost its short run so: 6 orders in
// 30 s, 124 answers 5xx. The order is checked as every other, but not
// counted as one the run confirmed (effortOf).
func (r *run) warm(ctx context.Context) error {
	began := time.Now()
	var product uuid.UUID
	for _, id := range r.products() {
		if id != r.scarce {
			product = id
			break
		}
	}
	o, body := r.place(ctx, product, false, true)
	switch {
	case o == nil:
		return errors.New("the first checkout: no token")
	case o.status == 0:
		return fmt.Errorf("the first checkout, before any chaos, got no definite answer within %s", r.o.AnswerWithin)
	case o.status != http.StatusCreated && o.status != http.StatusAccepted:
		return fmt.Errorf("the first checkout, before any chaos, was answered %d: %s", o.status, bytes.TrimSpace(body[:min(len(body), 500)]))
	}
	r.printf("the checkout path is warm: the first order answered %d in %s", o.status, time.Since(began).Round(time.Millisecond))
	return nil
}

// killer SIGKILLs a random function replica or connector process about
// every KillEvery, through the runtime (KillReplica, KillConnector): a
// replica listed here that exits before its kill is not signalled, so the
// kill never reaches a process group that took its freed id, and neither is
// one whose stop has begun, so a drain is never cut. Only a kill whose
// signal was sent is counted.
func (r *run) killer(ctx context.Context) {
	type target struct {
		name      string
		connector bool
		rep       supervisor.ReplicaInfo
	}
	for {
		d := r.o.KillEvery/2 + rand.N(r.o.KillEvery)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		var targets []target
		for _, fn := range r.deployed() {
			for _, rep := range r.rt.Replicas(fn) {
				if rep.PID > 0 {
					targets = append(targets, target{fn, false, rep})
				}
			}
		}
		for _, c := range []string{"rabbitmq", "outbox-relay", "scheduler"} {
			for _, rep := range r.rt.ConnectorReplicas(c) {
				if rep.PID > 0 {
					// Connectors are few: weigh them up so each is killed
					// several times per run.
					t := target{c, true, rep}
					targets = append(targets, t, t, t)
				}
			}
		}
		if len(targets) == 0 {
			continue
		}
		t := targets[rand.IntN(len(targets))]
		kill := r.rt.KillReplica
		if t.connector {
			kill = r.rt.KillConnector
		}
		switch sent, err := kill(t.name, t.rep); {
		case err != nil:
			r.printf("kill %s (%s): %v", t.name, t.rep.Instance, err)
		case sent:
			r.n.Kills.Add(1)
			r.mu.Lock()
			if r.killed == nil {
				r.killed = map[string]int{}
			}
			r.killed[t.name]++
			r.mu.Unlock()
		}
	}
}

// at sleeps until the moment i of n spread evenly over Duration (offset
// shifts PostgreSQL's moments from RabbitMQ's); false when ctx ended.
func (r *run) at(ctx context.Context, start time.Time, i, n int, offset float64) bool {
	when := start.Add(time.Duration((float64(i) + offset) / float64(n) * float64(r.o.Duration)))
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(when)):
		return true
	}
}

// restartPG restarts PostgreSQL PGRestarts times, alternating a crash
// (an immediate shutdown, SIGQUIT to the postmaster: no checkpoint, the WAL
// still in its buffers lost, recovery at start) with a planned restart (a
// fast shutdown, SIGINT), the crash first, so that the short run's one
// restart is a crash.
func (r *run) restartPG(ctx context.Context) {
	start := time.Now()
	for i := range r.o.PGRestarts {
		if !r.at(ctx, start, i, r.o.PGRestarts, 0.25) {
			return
		}
		t := time.Now()
		crash := i%2 == 0
		how := "restarted (fast shutdown, SIGINT)"
		if crash {
			how = "crashed and recovered (immediate shutdown, SIGQUIT)"
		}
		revived, err := deliverRestart(func() (bool, error) { return r.pg.Restart(context.WithoutCancel(ctx), crash) })
		r.n.PGRevived.Add(int64(revived))
		if revived > 0 {
			r.printf("PostgreSQL had exited on its own and was started again %d time(s): not a planned restart", revived)
		}
		if err != nil {
			r.printf("PostgreSQL restart failed: %v", err)
			continue
		}
		r.n.PGRestarts.Add(1)
		r.printf("PostgreSQL %s (%s)", how, time.Since(t).Round(time.Millisecond))
	}
}

// deliverRestart runs restart, a planned restart of PostgreSQL, until its
// signal reached a running server: a server found dead (revived, no signal
// sent) is started again by restart but took no fault, so the restart is
// made once more on the server now up. It returns how many times the server
// was found dead, and an error when restart failed or the planned fault was
// still not delivered: such a restart is not counted, and "every planned
// restart happened" fails.
func deliverRestart(restart func() (revived bool, err error)) (int, error) {
	n := 0
	for range 2 {
		revived, err := restart()
		if err != nil {
			return n, err
		}
		if !revived {
			return n, nil
		}
		n++
	}
	return n, fmt.Errorf("found dead at %d tries: the planned fault was not delivered", n)
}

// restartRabbit restarts RabbitMQ RabbitRestarts times, alternating
// stop_app, 3 s, start_app with a SIGKILL of the node and a boot.
func (r *run) restartRabbit(ctx context.Context) {
	start := time.Now()
	bg := context.WithoutCancel(ctx)
	for i := range r.o.RabbitRestarts {
		if !r.at(ctx, start, i, r.o.RabbitRestarts, 0.5) {
			return
		}
		t := time.Now()
		if i%2 == 0 {
			if err := r.rabbit.StopApp(bg); err != nil {
				r.printf("rabbitmqctl stop_app failed: %v", err)
				continue
			}
			time.Sleep(3 * time.Second)
			if err := r.rabbit.StartApp(bg); err != nil {
				r.printf("rabbitmqctl start_app failed: %v", err)
				continue
			}
			r.n.RabbitStops.Add(1)
			r.printf("RabbitMQ stop_app, 3s, start_app (%s)", time.Since(t).Round(time.Millisecond))
			continue
		}
		if err := r.rabbit.Kill(); err != nil {
			r.printf("RabbitMQ kill failed: %v", err)
			continue
		}
		if err := r.rabbit.Start(bg); err != nil {
			r.printf("RabbitMQ did not come back: %v", err)
			continue
		}
		r.n.RabbitKills.Add(1)
		r.printf("RabbitMQ node SIGKILLed and booted again (%s)", time.Since(t).Round(time.Millisecond))
	}
}
