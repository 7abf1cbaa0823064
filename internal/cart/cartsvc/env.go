package cartsvc

import (
	"log/slog"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/config"
)

// FromEnv builds what the cart functions that price carts need from c: the
// token verifier (jwt-secret) and the service over the Redis carts
// (REDIS_ADDR, …) and the catalog client (GATEWAY_URL, …). Every
// configuration problem is reported at once.
func FromEnv(c *config.Reader, log *slog.Logger) (*auth.Tokens, *Service, error) {
	rc := cartredis.ConfigFrom(c)
	key := c.Secret("jwt-secret", "", false)
	cc := catalogclient.ConfigFrom(c)
	if err := c.Err(); err != nil {
		return nil, nil, err
	}
	tokens, err := auth.NewTokens(key, 0)
	if err != nil {
		return nil, nil, err
	}
	catalog, err := catalogclient.New(cc)
	if err != nil {
		return nil, nil, err
	}
	return tokens, New(cartredis.New(cartredis.NewClient(rc), rc), catalog, log), nil
}
