// Package function is update-product-stats, an event handler (topics
// order.placed.v1 and order.cancelled.v1, POST / from the RabbitMQ connector
// with the internal credential): it adds each placed order's quantities to
// the products' sold_count and takes a cancelled order's back, once per event
// (the event id is claimed in the same transaction). A sale writes no
// product.changed.v1: with Meilisearch configured, the handler pushes the new
// counts there itself, and fails the delivery until the push succeeds. A
// failed cache write fails the delivery too (nothing else would repair the
// entry before its TTL), unless Redis refused the shop's login or command; a
// duplicate changes nothing but caches the products'
// current rows, in case the first delivery's cache write was lost. See
// docs/events.md.
package function

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/redisconn"
)

// Consumer is this function's name in the inbox.
const Consumer = "update-product-stats"

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := catalogenv.Load(context.Background(), c, log, catalogenv.Needs{Cache: true, Index: true, Internal: true, Events: true, Consumer: Consumer})
	if err != nil {
		return nil, err
	}
	return New(d, d.Internal), nil
}

// Response is the answer to a delivery.
type Response struct {
	EventID uuid.UUID `json:"event_id"`
	// Duplicate is true when the event had already been processed: nothing
	// was changed.
	Duplicate bool `json:"duplicate"`
	// Updated is how many products' counts changed.
	Updated int `json:"updated"`
}

// New returns the handler over d (Store required; Cache optional); callers
// must be an internal caller routes.Table names for it
// (fnhttp.CheckInternal: 401, 403). It answers 200
// only after the change committed, 4xx for an event it can never process,
// 5xx when the database, the cache write or the push failed (the connector
// retries).
func New(d *catalogenv.Deps, internal *auth.InternalVerifier) http.Handler {
	return newHandler(d, internal, AfterCommitTimeout)
}

// AfterCommitTimeout bounds the work after a sale's commit: caching the
// products and pushing them to Meilisearch, every round (its task polled
// until done). Unbounded, a Meilisearch that accepts the push but leaves its
// task queued held the delivery past the watchdog's exec_timeout (30 s) and
// the RabbitMQ connector's INVOKE_TIMEOUT (35 s): each redelivery hung the
// same way until the event was dead-lettered, though the database was right.
// Twenty seconds is below both (a sale's push is more patient than an admin
// write's, catalogenv.AfterCommitTimeout, as it may push several products);
// a push cut short fails the delivery (503) and the redelivery pushes again.
const AfterCommitTimeout = 20 * time.Second

// newHandler is New with the bound of the work after a commit (tests set
// less).
func newHandler(d *catalogenv.Deps, internal *auth.InternalVerifier, afterCommit time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, internal, "update-product-stats"); err != nil {
			return err
		}
		ev, err := d.Events.Read(r, events.OrderPlaced, events.OrderCancelled)
		if err != nil {
			return err
		}
		ctx := ev.Context(r.Context())
		var data orders.EventData
		if err := ev.DecodeData(&data); err != nil {
			return err
		}
		ds, err := catalog.SoldDeltas(data.OrderID, ev.Type == events.OrderCancelled, data.Items)
		if err != nil {
			return err
		}
		changed, first, err := d.Store.AddSold(ctx, ev.EventID, Consumer, data.OrderID, ev.Type == events.OrderCancelled, ds)
		if err != nil {
			return err
		}
		// The change has committed: what follows must not be cut short by a
		// caller that hangs up, and must end within its bound and before
		// the request's deadline (exec_timeout, less
		// catalogenv.AfterCommitMargin), as Deps.Committed.
		after, cancel := catalogenv.AfterCommitContext(ctx, afterCommit)
		defer cancel()
		// Each changed product goes into the cache as committed, so the next
		// order's pricing (get-product) finds it there: with a marker, every
		// sale made the next read of its product go to the database. The
		// cache write has its own short bound (catalogenv.CacheContext), not
		// cut by a deadline within the margin; only the push is.
		// A duplicate changed nothing, but the first delivery's cache write
		// may have been lost (Redis failed, the function crashed after the
		// commit, or the commit's answer was lost and the delivery failed):
		// it caches the products' current rows instead, with the same
		// compare-and-set on the version, so get-product does not serve the
		// old sold_count and ETag until PRODUCT_CACHE_TTL. A sale writes no
		// product.changed.v1 that index-product would repair the entry
		// from, so a failed cache write fails the delivery (503, after the
		// push): the redelivery, a duplicate, writes the cache again.
		cacheErr := refresh(ctx, d, changed, first, ds)
		if err := push(after, d, changed, first, ds); err != nil {
			return err
		}
		if cacheErr != nil {
			return cacheErr
		}
		if !first {
			d.Log.InfoContext(ctx, "duplicate event ignored", "event_id", ev.EventID, "type", ev.Type)
		} else {
			d.Log.InfoContext(ctx, "event processed", "event_id", ev.EventID, "type", ev.Type, "products", len(changed))
		}
		return fnhttp.JSON(w, http.StatusOK, Response{EventID: ev.EventID, Duplicate: !first, Updated: len(changed)})
	}))
	return fnhttp.Routes(mux)
}

// push brings the external search index, if any, up to the new sold counts.
// A sale writes no product.changed.v1 (docs/events.md), so this is the only
// way they reach it: a failed push fails the delivery (503), and the
// connector delivers the event again. The inbox then finds it a duplicate,
// which changes nothing in the database, so a duplicate pushes the current
// state of the event's products instead of what it changed.
func push(ctx context.Context, d *catalogenv.Deps, changed []catalog.Product, first bool, ds []catalog.SoldDelta) error {
	if d.External == nil {
		return nil
	}
	if first {
		for _, p := range changed {
			if err := d.Push(ctx, p); err != nil {
				return err
			}
		}
		return nil
	}
	for _, id := range products(ds) {
		if _, err := d.PushCurrent(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// refresh writes the sale's products to the cache, if any (catalogenv.Deps.
// Fresh): those the first delivery changed, or for a duplicate the event's
// products as stored now (products the catalog does not have are left out).
// It tries every product and returns the first failure, fault.Unavailable:
// the read's, or a cache write's (each also logged, throttled, by Deps) but
// for a Redis that refuses the login or the command, which no redelivery
// would change.
func refresh(ctx context.Context, d *catalogenv.Deps, changed []catalog.Product, first bool, ds []catalog.SoldDelta) error {
	if d.Cache == nil {
		return nil
	}
	cached := changed
	if !first {
		ids := products(ds)
		now, err := d.Store.CurrentOf(ctx, ids)
		if err != nil {
			return err // fault.Unavailable
		}
		cached = nil
		for _, id := range ids {
			if p, ok := now[id]; ok {
				cached = append(cached, p)
			}
		}
	}
	var failed error
	for _, p := range cached {
		cctx, cancel := catalogenv.CacheContext(ctx)
		// A Redis that refuses the shop (redisconn.Misconfigured) refuses
		// every redelivery too: logged at error level, not retried.
		if err := d.Fresh(cctx, p); err != nil && failed == nil && !redisconn.Misconfigured(err) {
			failed = fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "the product cache is unavailable")
		}
		cancel()
	}
	return failed
}

// products returns the products of ds, each once, in order.
func products(ds []catalog.SoldDelta) []uuid.UUID {
	var ids []uuid.UUID
	for _, d := range ds {
		if !slices.Contains(ids, d.ProductID) {
			ids = append(ids, d.ProductID)
		}
	}
	return ids
}
