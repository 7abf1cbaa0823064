// Package cartenv builds the dependencies of the cart functions (get-cart,
// set-cart-item, clear-cart) from their configuration. Every problem is
// collected before failing.
//
// Configuration: secret jwt-verify-key for Needs.Tokens; the Redis carts (cartredis.ConfigFrom:
// REDIS_ADDR, the optional secret redis-password, …); GATEWAY_URL (catalogclient.ConfigFrom) for Needs.Pricing.
package cartenv

import (
	"context"
	"log/slog"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/cart/cartsvc"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/config"
)

// Needs says which optional dependencies a function uses.
type Needs struct {
	Tokens  bool // verifies access tokens: the jwt-verify-key secret
	Pricing bool // prices carts from the catalog: the cart service
}

// Deps are a cart function's dependencies. Tokens is nil unless
// Needs.Tokens, Service unless Needs.Pricing.
type Deps struct {
	Tokens  *auth.Verifier
	Carts   *cartredis.Store
	Service *cartsvc.Service
}

// Load reads the configuration from c (every problem reported at once) and
// builds the dependencies. It checks the Redis login once (cartredis.NewClient:
// a refused login or a certificate that fails verification is an error, an
// unreachable Redis is not). A failed Load
// closes the Redis client it opened (a failed build is retried every few
// seconds: each retry would leave a connection open).
func Load(ctx context.Context, c *config.Reader, log *slog.Logger, needs Needs) (_ *Deps, err error) {
	rc := cartredis.ConfigFrom(c)
	callers := auth.CallersFrom(c, needs.Tokens, false)
	var cc catalogclient.Config
	if needs.Pricing {
		cc = catalogclient.ConfigFrom(c)
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	tokens, err := callers.Verifier()
	if err != nil {
		return nil, err
	}
	rdb, err := cartredis.NewClient(ctx, rc.Redis)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = rdb.Close()
		}
	}()
	d := &Deps{Tokens: tokens, Carts: cartredis.New(rdb, rc)}
	if needs.Pricing {
		catalog, err := catalogclient.New(cc)
		if err != nil {
			return nil, err
		}
		d.Service = cartsvc.New(d.Carts, catalog, log)
	}
	return d, nil
}
