// Package envtest builds catalog function dependencies for tests: a fresh
// migrated catalog database on the real PostgreSQL, the real Redis under a
// random key prefix (removed at the end), the embedded search index and a
// token service with a test key.
package envtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/cache"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/search/pgsearch"
)

// RedisAddr is the Redis the tests use.
const RedisAddr = "127.0.0.1:6379"

// Options tune New.
type Options struct {
	// RedisAddr overrides the Redis address, e.g. a closed port to test that
	// a Redis outage never fails a request.
	RedisAddr string
}

// Env is a test environment.
type Env struct {
	*catalogenv.Deps
	// Prefix is the cache key prefix of this test.
	Prefix string
	// Redis is a client of the test Redis, for assertions.
	Redis *redis.Client
}

// New builds the environment; it fails the test when PostgreSQL or Redis is
// missing, unless -short (then it skips).
func New(t *testing.T, opts Options) *Env {
	t.Helper()
	pool := pgtest.Open(t, catalogdb.Migrations())
	addr := opts.RedisAddr
	if addr == "" {
		addr = RedisAddr
	}
	rdb := redis.NewClient(&redis.Options{Addr: RedisAddr})
	if addr == RedisAddr {
		if err := rdb.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("Redis is required at %s: %v", RedisAddr, err)
		}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "test:catalog:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		rdb.Close()
	})
	ch, err := cache.New(cache.Config{Redis: redisconn.Config{Addr: addr}, Prefix: prefix, TTL: time.Minute, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	tokens := fntest.Tokens(t, time.Hour)
	return &Env{Deps: &catalogenv.Deps{
		Store: catalogdb.New(pool), Tokens: tokens, Cache: ch, Search: pgsearch.New(pool), Events: fntest.Events(),
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}, Prefix: prefix, Redis: rdb}
}

// Token issues a bearer token with role ("admin" or "customer").
func (e *Env) Token(t *testing.T, role string) string {
	t.Helper()
	return fntest.Bearer(t, e.Tokens, uuid.New(), role)
}

// Do serves one request; header is name, value pairs. A non-empty body is
// sent as application/json.
func Do(t *testing.T, h http.Handler, method, target, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	contentType := ""
	if body != "" {
		contentType = "application/json"
	}
	return fntest.Do(t, h, method, target, contentType, body, header...)
}

// Create stores a valid product through the store and the after-commit path
// the write functions use.
func (e *Env) Create(t *testing.T, sku, name, category string, price int64) catalog.Product {
	t.Helper()
	p, err := catalog.NewProduct(catalog.Draft{SKU: sku, Name: name, Description: "About " + name,
		Category: category, Price: catalog.Money{Amount: price, Currency: "USD"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p, err = e.Store.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	e.Committed(context.Background(), p)
	return p
}

// OutboxCount is how many product.changed.v1 events the outbox holds for id.
func (e *Env) OutboxCount(t *testing.T, id uuid.UUID) int {
	t.Helper()
	n, err := e.Store.CountEvents(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
