package catalogenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopfaas/shop/internal/cache"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/catalog/catalogenv/envtest"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
	"github.com/shopfaas/shop/internal/search/pgsearch"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Load names every missing setting at once and builds every dependency asked
// for, with the embedded search index when MEILI_URL is not set.
//
// A consumer's build records its INBOX_RETENTION under its name
// (inbox.RecordRetention), for the outbox relay.
func TestLoad(t *testing.T) {
	db := pgtest.NewDatabase(t)
	configtest.Run(t, configtest.Case[*catalogenv.Deps]{
		Name: "everything",
		Load: func(c *config.Reader) (*catalogenv.Deps, error) {
			return catalogenv.Load(context.Background(), c, slog.New(slog.DiscardHandler),
				catalogenv.Needs{Tokens: true, Cache: true, Search: true, Events: true, Consumer: "test-consumer"})
		},
		Missing: []string{"CATALOG_DATABASE_URL", "REDIS_ADDR", "jwt-verify-key", "event-verify-key"},
		Env:     map[string]string{"CATALOG_DATABASE_URL": db, "REDIS_ADDR": "127.0.0.1:6379", "INBOX_RETENTION": "1440h"},
		Secrets: map[string]string{"jwt-verify-key": configtest.CallerSecrets["jwt-verify-key"], "event-verify-key": configtest.VerifyKey(t)},
		Check: func(t *testing.T, d *catalogenv.Deps) {
			got, err := inbox.RecordedRetentions(context.Background(), pgtest.Connect(t, db))
			if diff := cmp.Diff([]inbox.Recorded{{Consumer: "test-consumer", Retention: 60 * 24 * time.Hour}}, got); diff != "" || err != nil {
				t.Errorf("retentions recorded (%v; -want +got):\n%s", err, diff)
			}
			if _, err := d.Events.Read(httptest.NewRequest("POST", "/", strings.NewReader("{}"))); !fault.Is(err, fault.Forbidden, fault.CodeInvalidSignature) {
				t.Errorf("Events.Read of an unsigned event = %v, want invalid_signature", err)
			}
			if _, ok := d.Search.(*pgsearch.Index); !ok || d.External != nil || d.Tokens == nil || d.Cache == nil || d.Store == nil {
				t.Errorf("deps %+v: want the embedded index and every dependency", d)
			}
			if err := d.Search.EnsureSettings(context.Background()); err != nil {
				t.Errorf("migrations not applied: %v", err)
			}
		},
	})
}

// A function that consumes events names itself in the inbox: its build
// records its retention under that name.
func TestAConsumerNamesItself(t *testing.T) {
	_, err := catalogenv.Load(context.Background(), config.New(config.Env(nil)), slog.New(slog.DiscardHandler), catalogenv.Needs{Events: true})
	if err == nil || !strings.Contains(err.Error(), "Needs.Consumer") {
		t.Errorf("Load with Needs.Events and no Needs.Consumer = %v, want a refusal naming Needs.Consumer", err)
	}
}

// A function that searches does not also write the index: it would hold
// both Meilisearch keys, and search-products, public, must hold only the
// search key (docs/security.md, "Meilisearch's keys").
func TestAFunctionHoldsOneMeilisearchKey(t *testing.T) {
	c := config.New(config.Env(map[string]string{"MEILI_URL": "http://127.0.0.1:1"}))
	_, err := catalogenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), catalogenv.Needs{Search: true, Index: true})
	if err == nil || !strings.Contains(err.Error(), "both Meilisearch keys") {
		t.Errorf("Load with Needs.Search and Needs.Index = %v, want the refusal of both keys", err)
	}
}

// A product cache that Redis refuses (its password changed on Redis's side
// after the function was built, or an ACL denies the cache's commands:
// NOPERM) is a miss, as any cache failure is, but logged at error level
// naming the secret and not the password: it is a configuration error, not
// an outage to ride out; a Redis that cannot be reached is a warning. Every
// call fails then, so the lines are throttled per kind: one for the first
// failure, none for the next ones within a minute (until 2026-12-05 each
// call logged a line: thousands a second under load), then one saying how
// many were not logged; each failed call is counted in
// shop_cache_errors_total by reason.
func TestFailedCacheCallsAreLoggedOnceAMinutePerKindAndCounted(t *testing.T) {
	const password = "catalogCachePassword"
	for _, tt := range []struct {
		name   string
		rules  []string // the default user's change once the cache is built; nil: no Redis
		level  string
		reason string
	}{
		{"password changed", []string{"resetpass", ">rotatedPassword"}, "ERROR", "auth"},
		{"commands denied", []string{"-get", "-eval", "-evalsha"}, "ERROR", "auth"},
		{"unreachable", nil, "WARN", "unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := "127.0.0.1:1"
			if tt.rules != nil {
				addr = redisconntest.Server(t, password)
			}
			c, err := cache.New(cache.Config{Redis: redisconntest.FromSecret(t, addr, password, redisconn.ConfigFrom),
				Prefix: "product:", Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.rules != nil {
				redisconntest.SetDefaultUser(t, addr, password, tt.rules...)
			}
			var logged bytes.Buffer
			d := &catalogenv.Deps{Cache: c, Log: slog.New(slog.NewJSONHandler(&logged, nil))}
			now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
			catalogenv.SetClock(d, func() time.Time { return now })
			reg := prometheus.NewRegistry()
			ctx := telemetry.WithShop(context.Background(), telemetry.NewShop(reg))
			for range 20 {
				if _, _, ok := d.Cached(ctx, "p"); ok {
					t.Fatal("Cached: a hit")
				}
				d.Invalidate(ctx, catalog.Product{})
			}
			now = now.Add(59 * time.Second)
			d.Remember(ctx, catalog.Product{Version: 1})
			now = now.Add(2 * time.Second) // a minute and a second after the first line
			d.Cached(ctx, "p")
			lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("42 failed calls logged %d lines, want 2 (the first, and one a minute later):\n%s", len(lines), logged.String())
			}
			for i, line := range lines {
				if !strings.Contains(line, `"level":"`+tt.level+`"`) || strings.Contains(line, password) {
					t.Errorf("logged %s: want level %s and no password", line, tt.level)
				}
				if tt.level == "ERROR" && !strings.Contains(line, "redis-password") {
					t.Errorf("logged %s: want it to name the redis-password secret", line)
				}
				if suppressed := strings.Contains(line, `"suppressed":40`); suppressed != (i == 1) {
					t.Errorf("line %d %s: want the second line, only, to count 40 calls not logged", i, line)
				}
			}
			other := map[string]string{"auth": "unavailable", "unavailable": "auth"}[tt.reason]
			want := fmt.Sprintf(`
# HELP shop_cache_errors_total %s
# TYPE shop_cache_errors_total counter
shop_cache_errors_total{reason=%q} 42
shop_cache_errors_total{reason=%q} 0
`, cacheErrorsHelp(t, reg), tt.reason, other)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shop_cache_errors_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

// cacheErrorsHelp is shop_cache_errors_total's help text as reg serves it.
func cacheErrorsHelp(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "shop_cache_errors_total" {
			return mf.GetHelp()
		}
	}
	t.Fatal("shop_cache_errors_total is not registered")
	return ""
}

// A product cache on a Redis that requires TLS serves entries when the
// redis-ca secret holds the authority of Redis's certificate; with another
// authority every call is a miss logged at error level naming redis-ca and
// counted in shop_cache_errors_total as auth, a configuration error rather
// than an outage to ride out.
func TestACacheOverTLSWorksOnlyWithItsCA(t *testing.T) {
	addr, ca := redisconntest.TLSServer(t, "catalogCachePassword")
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		ca    []byte
		level string // "" for no log line and a hit
	}{
		{"wrong CA", redisconntest.CA(t), "ERROR"},
		{"its CA", ca, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.New(cache.Config{Redis: redisconntest.FromTLSSecrets(t, addr, "catalogCachePassword", tt.ca, redisconn.ConfigFrom),
				Prefix: "product:", Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var logged bytes.Buffer
			d := &catalogenv.Deps{Cache: c, Log: slog.New(slog.NewJSONHandler(&logged, nil))}
			reg := prometheus.NewRegistry()
			ctx := telemetry.WithShop(ctx, telemetry.NewShop(reg))
			_, _ = c.Put(ctx, "p", 1, []byte(`{"id":"p"}`))
			_, _, ok := d.Cached(ctx, "p")
			auth := 0
			if tt.level != "" {
				auth = 1
			}
			want := fmt.Sprintf(`
# HELP shop_cache_errors_total %s
# TYPE shop_cache_errors_total counter
shop_cache_errors_total{reason="auth"} %d
shop_cache_errors_total{reason="unavailable"} 0
`, cacheErrorsHelp(t, reg), auth)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shop_cache_errors_total"); err != nil {
				t.Error(err)
			}
			if tt.level == "" {
				if !ok || logged.Len() != 0 {
					t.Errorf("Cached: hit %v, logged %q; want a hit and no log", ok, logged.String())
				}
				return
			}
			if ok || !strings.Contains(logged.String(), `"level":"`+tt.level+`"`) || !strings.Contains(logged.String(), "redis-ca") {
				t.Errorf("Cached: hit %v, logged %q; want a miss logged at %s naming redis-ca", ok, logged.String(), tt.level)
			}
		})
	}
}

// The end of a cache failure is logged: the first call that works after
// refused ones logs one line with the count of those not logged since the
// last (until 2026-12-05 that count was lost, and a failure that began again
// within a minute of the last line logged nothing); the next failure's first
// call is logged at once.
func TestTheEndOfACacheFailureIsLoggedWithItsCount(t *testing.T) {
	const password = "recoveryTestPassword"
	addr := redisconntest.Server(t, password)
	c, err := cache.New(cache.Config{Redis: redisconn.Config{Addr: addr, Password: password}, Prefix: "product:",
		Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var logged bytes.Buffer
	d := &catalogenv.Deps{Cache: c, Log: slog.New(slog.NewJSONHandler(&logged, nil))}
	ctx := context.Background()
	redisconntest.SetDefaultUser(t, addr, password, "-get")
	for range 10 {
		d.Cached(ctx, "p")
	}
	redisconntest.SetDefaultUser(t, addr, password, "+get")
	for range 3 {
		d.Cached(ctx, "p")
	}
	out := logged.String()
	if strings.Count(out, "product cache unavailable") != 1 || strings.Count(out, "product cache recovered") != 1 ||
		!strings.Contains(out, `"msg":"product cache recovered","reason":"auth","suppressed":9`) {
		t.Fatalf("10 refused calls, then 3 that worked: want one error and one recovery line with suppressed 9:\n%s", out)
	}
	redisconntest.SetDefaultUser(t, addr, password, "-get")
	d.Cached(ctx, "p")
	if lines := strings.Count(logged.String(), "product cache unavailable"); lines != 2 {
		t.Fatalf("refused again within the minute: %d lines, want 2:\n%s", lines, logged.String())
	}
}

// signedEvent is a POST of an order.placed.v1 event written age ago, signed
// with the key fntest.VerifyKey trusts.
func signedEvent(t *testing.T, age time.Duration) *http.Request {
	t.Helper()
	ev, err := events.New(context.Background(), "orders", events.OrderPlaced, "order-1", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	ev.Time = time.Now().Add(-age)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/", bytes.NewReader(b))
	r.Header.Set(events.SignatureHeader, fntest.Sign(string(b)))
	return r
}

// A consumer built with a retention raised from 30 to 60 days reads events
// within the window that grows from the raise (inbox.RecordRetention,
// inbox.Events.Since): an event 45 days old, whose processed-event record
// the relay pruned at 30 days until the raise, is refused 422 event_expired
// until 15 days after the raise (here a raise recorded 20 days ago), then
// read. Until 2026-12-06 the build read events within its retention at once.
func TestARaisedConsumerReadsWithinTheWindowGrowingFromTheRaise(t *testing.T) {
	db := pgtest.NewDatabase(t)
	build := func(retention string) *catalogenv.Deps {
		t.Helper()
		c := configtest.Reader(t, map[string]string{"CATALOG_DATABASE_URL": db, "INBOX_RETENTION": retention},
			map[string]string{"event-verify-key": fntest.VerifyKey()})
		d, err := catalogenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), catalogenv.Needs{Events: true, Consumer: "test-consumer"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	const day = 24 * time.Hour
	build("720h")
	d := build("1440h")
	if _, err := d.Events.Read(signedEvent(t, 45*day), events.OrderPlaced); !fault.Is(err, fault.Invalid, fault.CodeEventExpired) {
		t.Errorf("45 days old, just raised from 30 days to 60: Read = %v, want event_expired", err)
	}
	if _, err := d.Events.Read(signedEvent(t, 29*day), events.OrderPlaced); err != nil {
		t.Errorf("29 days old, just raised from 30 days to 60: Read = %v, want it read", err)
	}
	if _, err := pgtest.Connect(t, db).Exec(context.Background(), `UPDATE inbox_retentions SET raised_at = now() - interval '20 days'`); err != nil {
		t.Fatal(err)
	}
	d = build("1440h")
	if _, err := d.Events.Read(signedEvent(t, 45*day), events.OrderPlaced); err != nil {
		t.Errorf("45 days old, raised from 30 days to 60 20 days ago: Read = %v, want it read", err)
	}
	if _, err := d.Events.Read(signedEvent(t, 51*day), events.OrderPlaced); !fault.Is(err, fault.Invalid, fault.CodeEventExpired) {
		t.Errorf("51 days old, raised from 30 days to 60 20 days ago: Read = %v, want event_expired", err)
	}
}

// A build that fails after opening the catalog database (here applying the
// settings of a Meilisearch that does not answer) records no retention: the
// relay would prune with a retention no consumer runs with. Until 2026-12-06
// the retention was recorded before the index was built.
func TestABuildThatFailsRecordsNoRetention(t *testing.T) {
	db := pgtest.NewDatabase(t)
	c := configtest.Reader(t, map[string]string{"CATALOG_DATABASE_URL": db, "INBOX_RETENTION": "1440h", "MEILI_URL": "http://127.0.0.1:1"},
		map[string]string{"event-verify-key": fntest.VerifyKey()})
	_, err := catalogenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), catalogenv.Needs{Index: true, Events: true, Consumer: "test-consumer"})
	if err == nil {
		t.Fatal("Load with a Meilisearch that does not answer succeeded, want it to fail")
	}
	conn := pgtest.Connect(t, db)
	if got, rerr := inbox.RecordedRetentions(context.Background(), conn); len(got) != 0 || rerr != nil {
		t.Errorf("a failed build (%v) recorded %v (%v), want nothing", err, got, rerr)
	}
	// The failed build closed the pool it opened: a build is retried every
	// few seconds while Meilisearch is down, and each would leave one.
	var sessions int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&sessions); err != nil {
		t.Fatal(err)
	}

	if sessions != 0 {
		t.Errorf("%d sessions of the failed build still open in its database, want none (its pool closed)", sessions)
	}
}

// TestTheWorkAfterACommitIsBounded: Committed's push to Meilisearch waits for
// its task, and a Meilisearch that accepts the write but leaves the task in
// its queue made it wait for ever (context.WithoutCancel dropped the
// request's deadline with its cancellation): the admin's committed write
// never answered, and the goroutine kept polling. Committed must return
// within its bound (Deps.AfterCommit), however long the request's context
// would have lasted, and stop polling.
func TestTheWorkAfterACommitIsBounded(t *testing.T) {
	ext := envtest.NewQueuedMeili(t)
	d := &catalogenv.Deps{External: ext, Log: slog.New(slog.DiscardHandler), AfterCommit: 200 * time.Millisecond}
	p := catalog.Product{ID: uuid.Must(uuid.NewV7()), SKU: "SPK-1", Name: "Speaker", Category: "audio",
		Price: catalog.Money{Amount: 8999, Currency: "USD"}, Version: 1}
	// The request's deadline is far: the bound is what ends the work.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		d.Committed(ctx, p)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Committed still waiting for the Meilisearch task %v later (bound 200 ms; %d polls)", time.Since(start), ext.Polls())
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Committed took %v, want about its bound of 200 ms", took)
	}
	if ext.Polls() == 0 {
		t.Fatal("the push never polled its task: the test shows nothing")
	}
	polls := ext.Polls()
	time.Sleep(100 * time.Millisecond)
	if n := ext.Polls(); n != polls {
		t.Errorf("the task was polled %d more times after Committed returned", n-polls)
	}
	if catalogenv.AfterCommitTimeout <= 0 || catalogenv.AfterCommitTimeout > 10*time.Second {
		t.Errorf("AfterCommitTimeout %v, want a few seconds, well inside exec_timeout (30 s)", catalogenv.AfterCommitTimeout)
	}
}

// TestTheWorkAfterACommitEndsBeforeTheRequestsDeadline: the bound of the
// work after a commit started at the commit, and context.WithoutCancel
// dropped the request's deadline (fnserve's exec_timeout), so a commit that
// landed late had the answer wait the whole bound past that deadline: after
// write_timeout and the connector's INVOKE_TIMEOUT, which retried work that
// was done. The after-commit context ends by the request's deadline less
// AfterCommitMargin when that comes before the bound, and is still not
// cancelled by a caller that hangs up; Committed returns by then.
func TestTheWorkAfterACommitEndsBeforeTheRequestsDeadline(t *testing.T) {
	deadline := time.Now().Add(2 * time.Second)
	req, hangUp := context.WithDeadline(context.Background(), deadline)
	after, cancel := catalogenv.AfterCommitContext(req, time.Minute)
	defer cancel()
	if end, ok := after.Deadline(); !ok || end.After(deadline.Add(-catalogenv.AfterCommitMargin)) {
		t.Errorf("after-commit deadline %v (set %v), want by the request's %v less %v", end, ok, deadline, catalogenv.AfterCommitMargin)
	}
	hangUp()
	if err := after.Err(); err != nil {
		t.Errorf("the caller hung up and the work after the commit was cut: %v", err)
	}

	// A far deadline leaves the bound.
	start := time.Now()
	far, hangUpFar := context.WithTimeout(context.Background(), time.Hour)
	defer hangUpFar()
	after, cancel = catalogenv.AfterCommitContext(far, time.Second)
	defer cancel()
	if end, ok := after.Deadline(); !ok || end.Before(start.Add(time.Second)) || end.After(time.Now().Add(time.Second)) {
		t.Errorf("after-commit deadline %v (set %v), want its bound, a second from now", end, ok)
	}

	// Committed, bounded by a minute, pushing to a Meilisearch that leaves
	// its task queued, returns by the request's deadline.
	ext := envtest.NewQueuedMeili(t)
	d := &catalogenv.Deps{External: ext, Log: slog.New(slog.DiscardHandler), AfterCommit: time.Minute}
	p := catalog.Product{ID: uuid.Must(uuid.NewV7()), SKU: "SPK-1", Name: "Speaker", Category: "audio",
		Price: catalog.Money{Amount: 8999, Currency: "USD"}, Version: 1}
	deadline = time.Now().Add(catalogenv.AfterCommitMargin + 300*time.Millisecond)
	req, hangUp = context.WithDeadline(context.Background(), deadline)
	defer hangUp()
	done := make(chan struct{})
	go func() {
		d.Committed(req, p)
		close(done)
	}()
	select {
	case <-done:
		if now := time.Now(); now.After(deadline) {
			t.Errorf("Committed returned %v after the request's deadline", now.Sub(deadline))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Committed still waiting for the Meilisearch task 10 s later (request deadline in %v, %d polls)",
			catalogenv.AfterCommitMargin+300*time.Millisecond, ext.Polls())
	}
}

// TestACommitNearTheRequestsDeadlineStillInvalidatesTheCache: the cache
// invalidation after a commit ran in the after-commit context, which a
// request deadline within AfterCommitMargin had already ended, so Redis kept
// the old version and get-product served it until index-product handled the
// event (or the TTL, with the broker down). The invalidation has its own
// short bound, detached from the request; only the push is cut by the
// deadline.
func TestACommitNearTheRequestsDeadlineStillInvalidatesTheCache(t *testing.T) {
	addr := redisconntest.Server(t, "afterCommitPassword")
	c, err := cache.New(cache.Config{Redis: redisconn.Config{Addr: addr, Password: "afterCommitPassword"},
		Prefix: "product:", Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := &catalogenv.Deps{Cache: c, Log: slog.New(slog.DiscardHandler)}
	p := catalog.Product{ID: uuid.Must(uuid.NewV7()), SKU: "SPK-1", Name: "Speaker", Category: "audio",
		Price: catalog.Money{Amount: 8999, Currency: "USD"}, Version: 1}
	d.Remember(context.Background(), p)
	if _, v, ok := d.Cached(context.Background(), catalogenv.CacheKey(p)); !ok || v != 1 {
		t.Fatalf("Remember: cached %v at version %d, want version 1", ok, v)
	}

	p.Version, p.Name = 2, "Speaker v2"
	req, hangUp := context.WithTimeout(context.Background(), catalogenv.AfterCommitMargin-200*time.Millisecond)
	defer hangUp()
	d.Committed(req, p)
	if _, v, ok := d.Cached(context.Background(), catalogenv.CacheKey(p)); ok {
		t.Errorf("after the committed write of version 2 near the request's deadline the cache still serves version %d", v)
	}

	// update-product-stats' Fresh, in the cache context, as near the deadline.
	p.Version, p.Name = 3, "Speaker v3"
	req, hangUp = context.WithTimeout(context.Background(), catalogenv.AfterCommitMargin-200*time.Millisecond)
	defer hangUp()
	cctx, cancel := catalogenv.CacheContext(req)
	defer cancel()
	if err := d.Fresh(cctx, p); err != nil {
		t.Fatal(err)
	}
	if _, v, ok := d.Cached(context.Background(), catalogenv.CacheKey(p)); !ok || v != 3 {
		t.Errorf("Fresh near the request's deadline: cached %v at version %d, want version 3", ok, v)
	}
}

// A caller that hung up (its request context cancelled) makes the cache call
// fail, but Redis is fine: that is a miss, neither logged as Redis
// unavailable nor counted in shop_cache_errors_total, whose panel would
// otherwise show an outage for every client that gave up, and whose log would
// say "unavailable" then "recovered" at each one. A Redis that is down is
// still counted, and logged, with the caller's context cancelled or not.
func TestACallerThatHungUpIsNoCacheError(t *testing.T) {
	for _, tt := range []struct {
		name   string
		addr   string
		counts float64
	}{
		{"redis up", envtest.RedisAddr, 0},
		{"redis down", "127.0.0.1:1", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.New(cache.Config{Redis: redisconn.Config{Addr: tt.addr}, Prefix: "test:catalog:hungup:"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var logged bytes.Buffer
			d := &catalogenv.Deps{Cache: c, Log: slog.New(slog.NewJSONHandler(&logged, nil))}
			reg := prometheus.NewRegistry()
			ctx, cancel := context.WithCancel(telemetry.WithShop(context.Background(), telemetry.NewShop(reg)))
			if tt.addr == envtest.RedisAddr {
				cancel() // Redis is up: the call fails for the hang-up alone
			}
			if _, _, ok := d.Cached(ctx, uuid.NewString()); ok {
				t.Fatal("Cached: a hit")
			}
			d.Remember(ctx, catalog.Product{ID: uuid.New(), Version: 1})
			cancel()
			want := fmt.Sprintf(`
# HELP shop_cache_errors_total %s
# TYPE shop_cache_errors_total counter
shop_cache_errors_total{reason="auth"} 0
shop_cache_errors_total{reason="unavailable"} %v
`, cacheErrorsHelp(t, reg), tt.counts)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shop_cache_errors_total"); err != nil {
				t.Error(err)
			}
			if got := strings.Contains(logged.String(), "unavailable"); got != (tt.counts > 0) {
				t.Errorf("logged %q: want a line saying the cache is unavailable only when Redis is down", logged.String())
			}
		})
	}
}
