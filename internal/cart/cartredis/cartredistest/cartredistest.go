// Package cartredistest gives each test a cart store on the real Redis
// (127.0.0.1:6379, or $TEST_REDIS_ADDR) under a random key prefix whose keys
// are deleted when the test ends. A missing Redis fails the test unless it
// runs with -short.
package cartredistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/tcpproxy"
)

// Addr is the Redis server tests use.
func Addr() string {
	if a := os.Getenv("TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// New returns a store with a random key prefix and ttl, and its client.
func New(tb testing.TB, ttl time.Duration) (*cartredis.Store, *redis.Client, cartredis.Config) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs Redis; -short was asked for")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg := cartredis.Config{Redis: redisconn.Config{Addr: Addr()}, KeyPrefix: "test:" + hex.EncodeToString(b) + ":cart:", TTL: ttl}
	ctx := context.Background()
	rdb, err := cartredis.NewClient(ctx, cfg.Redis)
	if err != nil {
		tb.Fatal(err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		tb.Fatalf("Redis is required for this test (%s): %v", cfg.Redis.Addr, err)
	}
	tb.Cleanup(func() {
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, cfg.KeyPrefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return cartredis.New(rdb, cfg), rdb, cfg
}

// Proxied returns a store as New does whose client reaches Redis through a
// proxy, so that a test can take Redis away (proxy.Cut: every connection
// closed, new ones refused, as a Redis that stopped) and bring it back
// (proxy.Restore, as one restarted), and direct, a store on the same carts
// that reaches Redis directly, to see what was written meanwhile.
func Proxied(tb testing.TB, ttl time.Duration) (proxied *cartredis.Store, proxy *tcpproxy.Proxy, direct *cartredis.Store) {
	tb.Helper()
	direct, _, cfg := New(tb, ttl)
	proxy = tcpproxy.New(tb, cfg.Redis.Addr)
	cfg.Redis.Addr = proxy.Addr()
	rdb, err := cartredis.NewClient(context.Background(), cfg.Redis)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rdb.Close() })
	return cartredis.New(rdb, cfg), proxy, direct
}
