// Package ordersenv builds the dependencies of the orders functions from the
// environment (config.Reader): the orders database, the token verifier, and —
// for the functions that run sagas — the gateway client of the internal
// checkout functions, the catalog client and the cart store. Every problem is
// collected before failing.
package ordersenv

import (
	"context"
	"log/slog"
	"time"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
	"github.com/shopfaas/shop/internal/orders/saga"
	"github.com/shopfaas/shop/internal/postgres"
)

// Needs says which optional dependencies a function uses.
type Needs struct {
	Saga bool // runs checkouts: the saga and the internal credential
}

// Deps are an orders function's dependencies.
type Deps struct {
	// Store is the orders database.
	Store *ordersdb.Store
	// Tokens verifies access tokens (secret jwt-secret).
	Tokens *auth.Tokens
	// InternalToken is the internal credential (secret internal-token); set
	// only with Needs.Saga.
	InternalToken string
	// Saga drives checkouts; set only with Needs.Saga.
	Saga *saga.Saga
}

// Load reads the configuration from c (every problem reported at once) and
// connects to and migrates the orders database (postgres.ConfigFrom:
// ORDERS_…) within postgres.OpenTimeout. Needs.Saga also builds the saga
// (GATEWAY_URL, secret internal-token, REDIS_ADDR for carts, SAGA_TIMEOUT
// default 20s, RECOVER_AFTER default 2m).
func Load(ctx context.Context, c *config.Reader, log *slog.Logger, needs Needs) (*Deps, error) {
	withSaga := needs.Saga
	dbCfg := postgres.ConfigFrom(c, "orders", ordersdb.Migrations())
	key := c.Secret("jwt-secret", "", false)
	var internal string
	var loc gatewayurl.Locator
	var cartCfg cartredis.Config
	var catCfg catalogclient.Config
	var timeout, recoverAfter time.Duration
	if withSaga {
		internal = c.Secret("internal-token", "", false)
		loc = gatewayurl.FromConfig(c)
		cartCfg = cartredis.ConfigFrom(c)
		catCfg = catalogclient.ConfigFrom(c)
		timeout = c.Duration("SAGA_TIMEOUT", 20*time.Second)
		recoverAfter = c.Duration("RECOVER_AFTER", 2*time.Minute)
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens(key, 0)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, postgres.OpenTimeout)
	defer cancel()
	pool, err := postgres.Open(ctx, dbCfg)
	if err != nil {
		return nil, err
	}
	env := &Deps{Store: ordersdb.New(pool), Tokens: tokens}
	if !withSaga {
		return env, nil
	}
	gw, err := ordersgw.NewAt(loc, internal, nil, 0)
	if err != nil {
		pool.Close()
		return nil, err
	}
	catalog, err := catalogclient.New(catCfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	sg, err := saga.New(saga.Config{Store: env.Store, Stock: gw, Payments: gw, Catalog: catalog,
		Cart: cartredis.New(cartredis.NewClient(cartCfg), cartCfg), Log: log, Timeout: timeout, RecoverAfter: recoverAfter})
	if err != nil {
		pool.Close()
		return nil, err
	}
	env.Saga, env.InternalToken = sg, internal
	return env, nil
}
