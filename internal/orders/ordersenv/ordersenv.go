// Package ordersenv builds the dependencies of the orders functions from the
// environment (config.Reader): the orders database, the token verifier, and —
// for the functions that run sagas — the gateway client of the internal
// checkout functions, the catalog client and the cart store. Every problem is
// collected before failing.
package ordersenv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
	"github.com/shopfaas/shop/internal/orders/saga"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/ratelimit"
)

// Needs says which optional dependencies a function uses.
type Needs struct {
	Tokens bool // verifies access tokens: the jwt-verify-key secret
	Saga   bool // runs checkouts: the saga, calling the internal functions as Caller
	// Caller is the function's internal caller name (routes.Table's
	// Callers): with Saga it sends the credential internal-token-<Caller>.
	Caller string
	// Internal checks the function's own internal callers: the
	// internal-callers secret.
	Internal bool
	// Limit, with Saga, counts checkouts per verified subject
	// (ORDER_RATE_LIMIT) on a Redis client of its own (ratelimit.Open):
	// create-order's, the one that places orders.
	Limit bool
}

// Deps are an orders function's dependencies.
type Deps struct {
	// Store is the orders database.
	Store *ordersdb.Store
	// Tokens verifies access tokens (secret jwt-verify-key); set only with
	// Needs.Tokens.
	Tokens *auth.Verifier
	// Internal verifies internal callers (secret internal-callers); set
	// only with Needs.Internal.
	Internal *auth.InternalVerifier
	// Saga drives checkouts, behind the per-customer limit on checkouts
	// (ORDER_RATE_LIMIT per minute and verified subject, default 30); set
	// only with Needs.Saga.
	Saga *saga.Saga
}

// Load reads the configuration from c (every problem reported at once) and
// connects to and migrates the orders database (postgres.ConfigFrom:
// ORDERS_…) within postgres.OpenTimeout. Needs.Tokens reads the secret
// jwt-verify-key. Needs.Saga also builds the saga
// (GATEWAY_URL, optional FUNCTION_URLS and FUNCTION_URL_TEMPLATE for calls
// without the gateway (gatewayurl.DirectFrom), secret
// internal-token-<Needs.Caller>, REDIS_ADDR and the optional secret
// redis-password (redisconn.ConfigFrom) for carts and the checkout limit,
// SAGA_TIMEOUT default 20s, RECOVER_AFTER default 2m, GIVE_UP_AFTER default
// 12h), and checks the Redis login (cartredis.NewClient: a refused login or
// a certificate that fails verification is an error, an unreachable Redis is
// not). Needs.Limit also limits checkouts (ORDER_RATE_LIMIT default 30 per
// minute per customer) on a client of its own (ratelimit.Open, checked the
// same way). Needs.Internal reads the secret
// internal-callers. A failed Load closes what it opened (a failed build is
// retried every few seconds: each retry would leave a pool and a Redis
// connection open).
func Load(ctx context.Context, c *config.Reader, log *slog.Logger, needs Needs) (_ *Deps, err error) {
	withSaga := needs.Saga
	dbCfg := postgres.ConfigFrom(c, "orders", ordersdb.Migrations())
	dbCfg.Log = log // a migration retry's warning names this function (on faasd CE, the member)
	callers := auth.CallersFrom(c, needs.Tokens, needs.Internal)
	var credential string
	if withSaga {
		if needs.Caller == "" {
			return nil, errors.New("ordersenv: Needs.Saga without Needs.Caller")
		}
		credential = auth.CredentialFrom(c, needs.Caller)
	}
	if needs.Limit && !withSaga {
		return nil, errors.New("ordersenv: Needs.Limit without Needs.Saga")
	}
	var loc gatewayurl.Locator
	var cartCfg cartredis.Config
	var catCfg catalogclient.Config
	var timeout, recoverAfter, giveUpAfter, holdTTL time.Duration
	var orderLimit int
	if needs.Limit {
		orderLimit = c.Int("ORDER_RATE_LIMIT", 30, 1, 1_000_000)
	}
	if withSaga {
		loc = gatewayurl.FromConfig(c)
		cartCfg = cartredis.ConfigFrom(c)
		catCfg = catalogclient.ConfigAt(c, loc)
		timeout = c.Duration("SAGA_TIMEOUT", 20*time.Second)
		recoverAfter = c.Duration("RECOVER_AFTER", 2*time.Minute)
		giveUpAfter = c.Duration("GIVE_UP_AFTER", 12*time.Hour)
		// HOLD_TTL: the hold time asked of reserve-stock (its bounds, 30s to
		// 1h); unset leaves reserve-stock's default (15m).
		holdTTL = c.Duration("HOLD_TTL", 0)
		if holdTTL != 0 && (holdTTL < 30*time.Second || holdTTL > time.Hour) {
			return nil, fmt.Errorf("HOLD_TTL %s: must be from 30s to 1h", holdTTL)
		}
		// A hold must outlive the saga that writes its order: the expiry
		// sweep gives back the hold of an order it does not know once the
		// hold is past its expiry, and an order still being written would
		// then be confirmed on units given back (TestLoad). reserve-stock
		// is asked for whole seconds (ordersgw), so that is what must.
		if ttl := cmp.Or(holdTTL, inventory.DefaultHoldTTL); ttl.Truncate(time.Second) <= timeout {
			set := "unset (reserve-stock's default " + ttl.String() + ")"
			if holdTTL != 0 {
				set = fmt.Sprintf("%s (a hold of %s: reserve-stock takes whole seconds)", holdTTL, ttl.Truncate(time.Second))
			}
			return nil, fmt.Errorf("HOLD_TTL %s must be longer than SAGA_TIMEOUT %s", set, timeout)
		}
		// A drive must end within the request that runs it (fnserve's
		// exec_timeout): else a checkout answers after its deadline. And a
		// recovery run claims only orders it can finish in time, so only in
		// the window between its start and exec_timeout less the longest
		// drive: a window shorter than saga.MinClaimWindow is used up by the
		// request's own start, and every run claimed none.
		if exec := c.Duration("exec_timeout", 30*time.Second); saga.LongestDrive(timeout)+saga.MinClaimWindow > exec {
			return nil, fmt.Errorf("SAGA_TIMEOUT %s: a drive may take %s, which must leave recovery %s to claim orders within exec_timeout %s",
				timeout, saga.LongestDrive(timeout), saga.MinClaimWindow, exec)
		}
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	tokens, err := callers.Verifier()
	if err != nil {
		return nil, err
	}
	internal, err := callers.InternalVerifier()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, postgres.OpenTimeout)
	defer cancel()
	pool, err := postgres.Open(ctx, dbCfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	env := &Deps{Store: ordersdb.New(pool), Tokens: tokens, Internal: internal}
	if !withSaga {
		return env, nil
	}
	// The saga's steps and its get-product calls share one client, so one
	// pool of kept-alive connections (to the gateway, or to each function
	// called directly).
	hc := loc.NewClient()
	catCfg.HTTP = hc
	gw, err := ordersgw.NewAt(loc, credential, hc, 0)
	if err != nil {
		return nil, err
	}
	gw.SetHoldTTL(holdTTL)
	catalog, err := catalogclient.New(catCfg)
	if err != nil {
		return nil, err
	}
	rdb, err := cartredis.NewClient(ctx, cartCfg.Redis)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = rdb.Close()
		}
	}()
	// The edge cannot key a limit on the verified subject (see
	// internal/ratelimit), so the saga does, on a client of its own
	// (ratelimit.Options: no retries). Without Needs.Limit, none: a nil
	// saga.Limiter.
	var limit saga.Limiter
	if needs.Limit {
		limitRdb, lerr := ratelimit.Open(ctx, cartCfg.Redis)
		if lerr != nil {
			return nil, lerr
		}
		defer func() {
			if err != nil {
				_ = limitRdb.Close()
			}
		}()
		l, lerr := ratelimit.New(limitRdb, ratelimit.Config{Prefix: "shop:ratelimit:create-order:", Limit: int64(orderLimit)}, log)
		if lerr != nil {
			return nil, lerr // closes limitRdb: the deferred close sees err
		}
		limit = l
	}
	sg, err := saga.New(saga.Config{Store: env.Store, Stock: gw, Payments: gw, Catalog: catalog,
		Cart: cartredis.New(rdb, cartCfg), Limit: limit, Log: log, Timeout: timeout, RecoverAfter: recoverAfter,
		GiveUpAfter: giveUpAfter})
	if err != nil {
		return nil, err
	}
	env.Saga = sg
	return env, nil
}
