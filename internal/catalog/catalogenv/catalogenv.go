// Package catalogenv wires the catalog functions (create-, update-,
// archive-, list-, get- and search-products): it reads their configuration
// from the environment and secrets, opens the catalog database, the product
// cache and the search backend, and owns what happens after a catalog write
// commits (cache invalidation, push to an external search index).
//
// Configuration: the catalog database (postgres.ConfigFrom: CATALOG_…; for
// Needs.Reader postgres.ReaderConfigFrom: CATALOG_READER_DATABASE_URL and
// the secret db-password-catalog-reader when set, else the writers');
// REDIS_ADDR and the optional secret redis-password (redisconn.ConfigFrom),
// PRODUCT_CACHE_PREFIX (default "shop:catalog:product:"), PRODUCT_CACHE_TTL (default 5m); MEILI_URL (when
// set, search uses Meilisearch), MEILI_INDEX (default products), the
// secrets meili-key (Needs.Index: the writers' admin key; optional, a
// Meilisearch that refuses it fails the settings at build) and
// meili-search-key (Needs.Search: search-products' search-only key, required
// with MEILI_URL, docs/security.md); secret jwt-verify-key for the admin writes; secret
// internal-callers for the event functions; secret event-verify-key,
// EVENT_ACCEPT_UNSIGNED and INBOX_RETENTION (the window of events accepted,
// the relay's setting too, and recorded in the catalog database for it,
// inbox.RecordRetention) for Needs.Events.
package catalogenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cache"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/meili"
	"github.com/shopfaas/shop/internal/search/pgsearch"
	"github.com/shopfaas/shop/internal/telemetry"
)

// The Meilisearch keys, one secret each (docs/security.md, "Meilisearch's
// keys"): neither is the master key, which only Meilisearch holds.
const (
	// IndexKeySecret is the writers' key (Needs.Index), also read by the
	// operator command cmd/reindex: an API key of the products index allowed
	// to add and delete its documents (documents.add, documents.delete),
	// create it, update its settings and read their tasks, to list its
	// documents (documents.get) and to read Meilisearch's version
	// (version), the last two used by cmd/reindex alone.
	IndexKeySecret = "meili-key"
	// SearchKeySecret is search-products' key (Needs.Search): an API key of
	// the products index allowed to search it, nothing else.
	SearchKeySecret = "meili-search-key"
)

// Needs says which optional dependencies a function uses.
type Needs struct {
	Tokens bool // admin writes: the jwt-verify-key secret
	Cache  bool // get-product and the writes: Redis
	// Search: search-products answers searches from the search backend. With
	// Meilisearch it holds only the meili-search-key secret, a key that can
	// search the index and do nothing else, and sends nothing but searches
	// (one with limit 0 as it builds, which checks the key): not even the
	// index settings, which a writer applies (Index).
	Search bool
	// Index: the writes and the event functions keep the external index
	// (Meilisearch) up to date, with the meili-key secret, an admin key of
	// the index; the build applies the index settings (EnsureSettings).
	Index bool
	// Internal: event functions check their internal callers (the
	// internal-callers secret).
	Internal bool
	// Events: the function consumes events and checks the relay's signature
	// (the event-verify-key secret, inbox.EventsConfigFrom), as Consumer.
	Events bool
	// Consumer is the function's name in the inbox (the one it claims
	// events with), required with Events: the build records its
	// INBOX_RETENTION under it (inbox.RecordRetention), so that the outbox
	// relay keeps the records of the events it still accepts.
	Consumer string
	// Reader: the function only reads the catalog (the public get-product,
	// list-products and search-products). With CATALOG_READER_DATABASE_URL
	// set it logs in as the readers' role, shop_catalog_reader, which may
	// read the products and the search index and write nothing, never
	// migrates, and fails its build (postgres.ErrNotMigrated) until the
	// writers have applied every migration it knows
	// (postgres.ReaderConfigFrom; docs/security.md, "Database roles").
	// Unset, it opens the database as the writers do. A reader writes
	// nothing: not with Index, Internal or Events, nor Tokens (the admin
	// writes' verifier: a function that checks admins is a writer).
	Reader bool
}

// Deps are a catalog function's dependencies. Fields a function does not
// need are nil.
type Deps struct {
	Store  *catalogdb.Store
	Tokens *auth.Verifier
	Cache  *cache.Cache
	// Search answers searches, set with Needs.Search: Meilisearch when
	// configured, else the embedded PostgreSQL index.
	Search search.Index
	// External is the search index that the catalog's transaction does not
	// maintain (Meilisearch), set with Needs.Index; nil for the embedded
	// one. Writes push to it
	// after commit (Committed); index-product does so again from
	// product.changed.v1, and update-product-stats fails a sale's delivery
	// until its push succeeds.
	External search.Index
	// Internal verifies internal callers, set with Needs.Internal.
	Internal *auth.InternalVerifier
	// Events reads signed events, set with Needs.Events.
	Events inbox.Events
	Log    *slog.Logger
	// AfterCommit bounds Committed (AfterCommitContext); zero is
	// AfterCommitTimeout. Tests set less.
	AfterCommit time.Duration

	// cacheLogs throttle the log lines of failed cache calls, one per kind
	// (refused, unavailable); now is their clock (tests set it).
	cacheLogs [2]telemetry.Repeats
	now       func() time.Time
}

// Load reads the configuration from c (every problem reported at once) and
// builds the dependencies: the product cache (cache.New, which does not
// check its Redis login: a Redis that refuses it, whose certificate fails
// verification, or that is down fails each cache call, counted and logged,
// never the build, so the catalog stays ready and serves from PostgreSQL;
// the functions that need Redis fail their build on the first two,
// redisconn.Open), the catalog database, connected and migrated (for
// Needs.Reader with its own URL, connected and checked to be migrated), and
// the search backend: for Needs.Search, with Meilisearch, the meili-search-key
// secret required and checked with one search of limit 0 (meili.CheckKey:
// a key Meilisearch refuses fails the build, naming the secret; an index no
// writer has created yet, or a Meilisearch that cannot be reached, does not
// and is logged), and for Needs.Index the external index, its settings
// applied. A function needs one or the other, never both: one key each.
// Last, for Needs.Events, it records the consumer's INBOX_RETENTION in the
// catalog database (inbox.RecordRetention) and reads events within the window
// that returns (inbox.Events.Since): a build failing before that records
// nothing, one failing to record fails.
// A failed Load closes what it opened (a build is retried every few seconds
// while a dependency is down: each retry would leave a Redis connection and
// a pool open).
func Load(ctx context.Context, c *config.Reader, log *slog.Logger, needs Needs) (_ *Deps, err error) {
	if needs.Reader && (needs.Index || needs.Internal || needs.Events || needs.Tokens) {
		return nil, fmt.Errorf("catalogenv: a reader (Needs.Reader) writes nothing: it does not write the index (Needs.Index) nor serve events, internal callers or admins (Needs.Tokens)")
	}
	var dbc postgres.Config
	if needs.Reader {
		dbc = postgres.ReaderConfigFrom(c, "catalog", catalogdb.Migrations())
	} else {
		dbc = postgres.ConfigFrom(c, "catalog", catalogdb.Migrations())
	}
	dbc.Log = log // a migration retry's warning names this function (on faasd CE, the member)
	var cc cache.Config
	if needs.Cache {
		cc = cache.Config{Redis: redisconn.ConfigFrom(c), Prefix: c.String("PRODUCT_CACHE_PREFIX", "shop:catalog:product:"),
			TTL: c.Duration("PRODUCT_CACHE_TTL", 5*time.Minute)}
	}
	if needs.Search && needs.Index {
		return nil, fmt.Errorf("catalogenv: a function that searches (Needs.Search) does not write the index (Needs.Index): it would hold both Meilisearch keys")
	}
	var mc meili.Config
	if needs.Search || needs.Index {
		mc = meili.Config{URL: c.String("MEILI_URL", ""), IndexUID: c.String("MEILI_INDEX", "products")}
		switch {
		case mc.URL == "":
		case needs.Search:
			mc.APIKey = c.Secret(SearchKeySecret, "", false)
		default:
			mc.APIKey = c.OptionalSecret(IndexKeySecret)
		}
	}
	callers := auth.CallersFrom(c, needs.Tokens, needs.Internal)
	d := &Deps{Log: log}
	var ec inbox.EventsConfig
	if needs.Events {
		if needs.Consumer == "" {
			return nil, fmt.Errorf("catalogenv: a function that consumes events (Needs.Events) needs its name in the inbox (Needs.Consumer)")
		}
		ec = inbox.EventsConfigFrom(c)
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	if needs.Events {
		ev, err := ec.Events(log)
		if err != nil {
			return nil, err
		}
		d.Events = ev
	}
	t, err := callers.Verifier()
	if err != nil {
		return nil, err
	}
	d.Tokens = t
	if d.Internal, err = callers.InternalVerifier(); err != nil {
		return nil, err
	}
	if needs.Cache {
		if d.Cache, err = cache.New(cc); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				_ = d.Cache.Close()
			}
		}()
	}
	ctx, cancel := context.WithTimeout(ctx, postgres.OpenTimeout)
	defer cancel()
	pool, err := postgres.Open(ctx, dbc)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	d.Store = catalogdb.New(pool)
	if needs.Search {
		d.Search = pgsearch.New(pool)
	}
	if mc.URL != "" {
		ix, err := meili.New(mc)
		if err != nil {
			return nil, err
		}
		if needs.Search {
			if err := ix.CheckKey(ctx); errors.Is(err, meili.ErrKeyRefused) {
				return nil, fmt.Errorf("catalogenv: Meilisearch refused the %s secret (not a key of its own, or not one allowed to search the index %s): %w",
					SearchKeySecret, mc.IndexUID, err)
			} else if err != nil {
				log.WarnContext(ctx, "the "+SearchKeySecret+" secret was not checked: Meilisearch did not answer its search as the function built",
					"err", err.Error())
			}
			d.Search = ix
		} else {
			if err := ix.EnsureSettings(ctx); err != nil {
				return nil, err
			}
			d.External = ix
		}
	}
	// Last, once nothing else can fail the build (and before any event is
	// read): a build that fails records nothing the relay would prune with.
	if needs.Events {
		w, err := inbox.RecordRetention(ctx, pool, needs.Consumer, ec.Retention)
		if err != nil {
			return nil, err
		}
		d.Events = d.Events.Since(w)
	}
	return d, nil
}

// CacheKey is the cache entry of a product.
func CacheKey(p catalog.Product) string { return p.ID.String() }

// AfterCommitTimeout bounds what Committed does after a write's commit, the
// cache marker and every round of the push to the external index (Meilisearch
// polls a task until it is done: one waiting in a busy queue would otherwise
// hold the admin's answer until the watchdog's exec_timeout, 30 s, cut it
// with a 5xx for a write that committed, and keep the goroutine). Five
// seconds is well inside exec_timeout; a push cut short is logged as any
// failed push, and index-product's push from the write's product.changed.v1
// repairs the index.
const AfterCommitTimeout = 5 * time.Second

// AfterCommitMargin is what AfterCommitContext leaves of the request's
// deadline for the answer: the work after a commit ends that long before it.
const AfterCommitMargin = 500 * time.Millisecond

// AfterCommitContext is the context of the work after a commit: not cut
// short by a caller that hangs up (the write has happened), but bounded by
// bound, so the function still answers and no goroutine outlives it, and by
// ctx's deadline (fnserve's exec_timeout) less AfterCommitMargin when that
// comes first. context.WithoutCancel drops the deadline with the
// cancellation, and the bound starts at the commit: a commit that landed
// late had the answer wait the whole bound past the request's deadline,
// after write_timeout and the connector's INVOKE_TIMEOUT, which then retried
// work that was done. A deadline within the margin ends the work at once (a
// push cut short is logged by Committed, and fails update-product-stats'
// delivery, whose redelivery pushes again). It bounds the search index push
// only: the cache writes use CacheContext.
func AfterCommitContext(ctx context.Context, bound time.Duration) (context.Context, context.CancelFunc) {
	end := time.Now().Add(bound)
	if d, ok := ctx.Deadline(); ok && d.Add(-AfterCommitMargin).Before(end) {
		end = d.Add(-AfterCommitMargin)
	}
	return context.WithDeadline(context.WithoutCancel(ctx), end)
}

// CacheContext is the context of a cache write after a commit
// (Invalidate, Fresh): detached from ctx, so neither a caller that hangs up
// nor a request deadline within AfterCommitMargin cuts it (a Redis SET takes
// about a millisecond, and write_timeout is exec_timeout + 2 s), and bounded
// by AfterCommitMargin/2 of its own.
func CacheContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), AfterCommitMargin/2)
}

// Committed runs after a catalog write committed: it replaces the product's
// cache entry with an invalidation marker of the new version (Invalidate),
// always, within CacheContext's own bound, and pushes the product to the
// external search index, if any (Push), within d.AfterCommit
// (AfterCommitTimeout by default) and ctx's deadline less AfterCommitMargin
// (AfterCommitContext), whichever comes first, though ctx be cancelled.
// Failures, the bound's included, are logged, never returned: the write has
// happened, and the cache TTL and the product.changed.v1 event (index-product)
// repair what was missed. A sale writes no such event: update-product-stats
// calls Fresh and Push itself, within its own bound, and fails the delivery
// when the push fails. pushed reports whether the external index took the
// push: false without one, or when it failed (index-product's stock report).
func (d *Deps) Committed(ctx context.Context, p catalog.Product) (pushed bool) {
	bound := d.AfterCommit
	if bound <= 0 {
		bound = AfterCommitTimeout
	}
	cctx, ccancel := CacheContext(ctx)
	d.Invalidate(cctx, p)
	ccancel()
	ctx, cancel := AfterCommitContext(ctx, bound)
	defer cancel()
	if err := d.Push(ctx, p); err != nil {
		d.Log.WarnContext(ctx, "search index push failed", "product_id", p.ID, "err", err.Error())
		return false
	}
	return d.External != nil
}

// Fresh caches p as the write that returned it has just committed it: a live
// product's entry becomes p itself at its version (Remember), so the next GET
// finds the new state in Redis instead of reading the database; an archived
// product's becomes an invalidation marker (Invalidate: get-product answers
// 404 for it). Either is a compare-and-set on the version, so it can no more
// overwrite a newer entry than a marker can. p must be the row as PostgreSQL
// returned it (a sale's UPDATE … RETURNING), byte for byte what a read would
// cache. A failure is logged and returned: a sale, which writes no
// product.changed.v1 that index-product would repair the entry from, fails
// its delivery so that the redelivery caches the product again.
func (d *Deps) Fresh(ctx context.Context, p catalog.Product) error {
	if p.Archived {
		return d.invalidate(ctx, p)
	}
	return d.remember(ctx, p)
}

// Invalidate replaces the product's cache entry with an invalidation marker of
// its version, so the next GET reads the database and no older copy can be
// written back. A failure is logged: the cache TTL bounds what it misses.
func (d *Deps) Invalidate(ctx context.Context, p catalog.Product) { _ = d.invalidate(ctx, p) }

// invalidate is Invalidate, its failure returned as well as logged.
func (d *Deps) invalidate(ctx context.Context, p catalog.Product) error {
	if d.Cache == nil {
		return nil
	}
	if err := d.Cache.Invalidate(ctx, CacheKey(p), p.Version); err != nil {
		d.cacheFailed(ctx, "product cache invalidation failed", err, "product_id", p.ID)
		return err
	}
	d.cacheWorked(ctx)
	return nil
}

// cacheFailed counts a failed cache call in shop_cache_errors_total by
// reason and logs it: a warning, as the cache only saves work, unless the
// failure is redisconn.Misconfigured (reason auth): Redis refused the login
// or the command (the redis-password secret is wrong or missing, or Redis's
// ACL denies its user the command: redisconn.AuthFailed), or its TLS
// certificate failed verification (redisconn.TLSFailed), a configuration
// error that turns every read into a miss, logged at error level naming the
// secret. Every call fails while
// Redis is down or refuses, so the lines are throttled per kind: the first,
// then at most one per telemetry.RepeatInterval, with the count of the calls
// not logged since the last line (suppressed), and one when a call succeeds
// again (cacheWorked). A call that failed because its caller hung up (ctx
// cancelled: get-product's request) says nothing about Redis: it is a miss,
// neither counted nor logged, or every client that gave up would show on
// the panel and in the log as an outage and its recovery.
func (d *Deps) cacheFailed(ctx context.Context, msg string, err error, attrs ...any) {
	if errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	refused := redisconn.Misconfigured(err)
	reason, kind := telemetry.CacheUnavailable, 0
	if refused {
		reason, kind = telemetry.CacheAuth, 1
	}
	telemetry.ShopFrom(ctx).CacheError(reason)
	now := time.Now
	if d.now != nil {
		now = d.now
	}
	log, suppressed := d.cacheLogs[kind].Log(reason, now())
	if !log {
		return
	}
	attrs = append(append(attrs, "err", err.Error()), telemetry.SuppressedAttrs(suppressed)...)
	if refused {
		d.Log.ErrorContext(ctx, msg+": "+redisconn.Refused(err), attrs...)
		return
	}
	d.Log.WarnContext(ctx, msg, attrs...)
}

// cacheWorked is called after every cache call that succeeded: the first
// after a logged failure of a kind logs one line saying the cache works
// again, with the count of that kind's failed calls not logged since its
// last line (suppressed), so the end of an outage or refusal is seen and the
// next one is logged at once. Otherwise it costs two atomic loads
// (telemetry.Repeats.Recovered).
func (d *Deps) cacheWorked(ctx context.Context) {
	for kind, reason := range [2]string{telemetry.CacheUnavailable, telemetry.CacheAuth} {
		if recovered, suppressed := d.cacheLogs[kind].Recovered(); recovered {
			d.Log.InfoContext(ctx, "product cache recovered",
				append([]any{"reason", reason}, telemetry.SuppressedAttrs(suppressed)...)...)
		}
	}
}

// pushRounds bounds Push: a product that changes again after every one of
// this many pushes fails the push (its writer's own push, or the retried
// delivery, brings the index up to date).
const pushRounds = 8

// Push brings the external search index, if any, to the product's current
// state, starting from p as a write just left it (archived: removed from the
// index).
//
// Pushes race: an admin write, a sale and a stock event each push the product
// as they read it, and the index keeps whichever push lands last, so a slow
// push of an older state could undo a newer one (an archived product back in
// the results, a sold count going down). So after every push Push reads the
// product again and pushes what it finds until what it pushed is current.
// Every change's writer does the same after its commit, so the last push to
// land is of the current state. A failed push or read is an error
// (fault.Unavailable for the index: a handler's delivery is retried).
func (d *Deps) Push(ctx context.Context, p catalog.Product) error {
	if d.External == nil {
		return nil
	}
	_, err := d.push(ctx, p.ID, p, true)
	return err
}

// PushCurrent reads the product and pushes it as Push does; a product the
// catalog does not have is removed from the external index. upserted
// reports what its last push did, the one that left the index current:
// true when it added the product's document (the product live), false when
// it removed it (archived or not in the catalog), or when there is no
// external index.
func (d *Deps) PushCurrent(ctx context.Context, id uuid.UUID) (upserted bool, err error) {
	if d.External == nil {
		return false, nil
	}
	p, found, err := d.current(ctx, id)
	if err != nil {
		return false, err
	}
	upserted, err = d.push(ctx, id, p, found)
	return upserted, err
}

func (d *Deps) push(ctx context.Context, id uuid.UUID, p catalog.Product, found bool) (upserted bool, err error) {
	for range pushRounds {
		upserted = found && !p.Archived
		if upserted {
			err = d.External.Upsert(ctx, search.FromProduct(p))
		} else {
			err = d.External.Delete(ctx, id)
		}
		if err != nil {
			return false, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "the search index is unavailable")
		}
		now, nowFound, err := d.current(ctx, id)
		if err != nil {
			return false, err
		}
		if nowFound == found && (!found || now.Version == p.Version) {
			return upserted, nil
		}
		p, found = now, nowFound
	}
	return false, fault.E(fault.Unavailable, fault.CodeUnavailable, "the product kept changing while it was pushed to the search index")
}

// current reads the product as stored now; found is false when the catalog
// does not have it.
func (d *Deps) current(ctx context.Context, id uuid.UUID) (p catalog.Product, found bool, err error) {
	p, err = d.Store.Current(ctx, id)
	if fault.Is(err, fault.NotFound, "") {
		return p, false, nil
	}
	return p, err == nil, err
}

// Cached returns the cached JSON of a product and its version; any Redis
// failure is logged and is a miss.
func (d *Deps) Cached(ctx context.Context, key string) ([]byte, int64, bool) {
	if d.Cache == nil {
		return nil, 0, false
	}
	body, version, ok, err := d.Cache.Get(ctx, key)
	if err != nil {
		d.cacheFailed(ctx, "product cache unavailable, reading the database", err)
		return nil, 0, false
	}
	d.cacheWorked(ctx)
	return body, version, ok
}

// Remember caches p (as JSON) unless a newer version or marker is there;
// failures are logged.
func (d *Deps) Remember(ctx context.Context, p catalog.Product) { _ = d.remember(ctx, p) }

// remember is Remember, its failure returned as well as logged.
func (d *Deps) remember(ctx context.Context, p catalog.Product) error {
	if d.Cache == nil {
		return nil
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode product %s for the cache: %w", p.ID, err)
	}
	if _, err := d.Cache.Put(ctx, CacheKey(p), p.Version, body); err != nil {
		d.cacheFailed(ctx, "product cache write failed", err, "product_id", p.ID)
		return err
	}
	d.cacheWorked(ctx)
	return nil
}
