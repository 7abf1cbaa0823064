// Package cache is a Redis cache-aside helper for versioned entities. Every
// entry carries the entity's version, and writes are compare-and-set in Redis
// (one Lua script), so a reader that loaded an old version from the database
// can never overwrite a newer entry or the invalidation marker a writer left
// after its commit: a stale write-back cannot stick.
//
// The cache is an optimisation only: callers treat every error as a miss and
// serve from the database.
package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/redisconn"
)

// Config configures a Cache.
type Config struct {
	// Redis is where Redis is and its password (redisconn.ConfigFrom:
	// REDIS_ADDR and the optional redis-password secret). Addr is required.
	Redis redisconn.Config
	// Prefix starts every key, so tests and services never collide. Required.
	Prefix string
	// TTL bounds how long an entry lives. Default 5 minutes.
	TTL time.Duration
	// Timeout bounds every Redis call, so a Redis that is down costs a request
	// little. Default 200 ms.
	Timeout time.Duration
}

// Cache stores versioned values under Prefix.
type Cache struct {
	rdb     *redis.Client
	prefix  string
	ttl     time.Duration
	timeout time.Duration
}

// New returns a cache of cfg; its only error is a Config without Redis.Addr
// or Prefix. It does not check the login (redisconn.Client): the cache is
// an optimisation, so a Redis that refuses it (a wrong or missing
// redis-password secret, an ACL that denies its commands), whose TLS
// certificate fails verification (the redis-ca secret, REDIS_ADDR's host) or
// that is down fails each call, fast, which callers count, log and take as a
// miss, and never fails a function's build.
func New(cfg Config) (*Cache, error) {
	if cfg.Redis.Addr == "" || cfg.Prefix == "" {
		return nil, errors.New("cache: Redis.Addr and Prefix are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 200 * time.Millisecond
	}
	opts := redisconn.Options(cfg.Redis)
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = cfg.Timeout, cfg.Timeout, cfg.Timeout
	opts.MaxRetries, opts.PoolSize, opts.MinIdleConns = -1, 4, 0
	// One dial per call, as one try per command: go-redis's default retries
	// a failed dial 4 more times 100 ms apart, so a certificate that failed
	// verification ended as the call's deadline, counted as unavailable,
	// 200 ms later.
	opts.DialerRetries = 1
	return &Cache{rdb: redisconn.Client(opts), prefix: cfg.Prefix, ttl: cfg.TTL, timeout: cfg.Timeout}, nil
}

// Close releases the connections.
func (c *Cache) Close() error { return c.rdb.Close() }

// Key is the Redis key of name, with the prefix.
func (c *Cache) Key(name string) string { return c.prefix + name }

// An entry is stored as "<version>:<payload>"; an invalidation marker has an
// empty payload ("<version>:").
func decode(raw string) (version int64, payload []byte, ok bool) {
	v, p, found := strings.Cut(raw, ":")
	n, err := strconv.ParseInt(v, 10, 64)
	if !found || err != nil {
		return 0, nil, false
	}
	return n, []byte(p), true
}

// Get returns the cached payload and its version. ok is false on a miss or
// when only an invalidation marker is there; err reports Redis failures.
func (c *Cache) Get(ctx context.Context, name string) (payload []byte, version int64, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	raw, err := c.rdb.Get(ctx, c.Key(name)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("cache get: %w", err)
	}
	version, payload, ok = decode(raw)
	if !ok || len(payload) == 0 {
		return nil, version, false, nil
	}
	return payload, version, true, nil
}

// setIfNewer stores ARGV[1] (version) + ":" + ARGV[2] (payload) with TTL
// ARGV[3] ms unless the key holds a higher version, or the same version with
// a payload already (an entry is never replaced by its own copy, and a marker
// of version v is replaced only by a payload of version >= v).
var setIfNewer = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
	local sep = string.find(cur, ':', 1, true)
	local v = sep and tonumber(string.sub(cur, 1, sep - 1))
	local new = tonumber(ARGV[1])
	if v and (v > new or (v == new and (#cur > sep or ARGV[2] == ''))) then
		return 0
	end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return 1`)

// Put caches payload at version unless a newer entry or marker is there. It
// reports whether the entry was written.
func (c *Cache) Put(ctx context.Context, name string, version int64, payload []byte) (bool, error) {
	if len(payload) == 0 {
		return false, errors.New("cache put: empty payload")
	}
	return c.set(ctx, name, version, payload)
}

// Invalidate replaces the entry with a marker of version, after the change to
// that version committed. Readers then miss, and only a value of at least that
// version can be cached again.
func (c *Cache) Invalidate(ctx context.Context, name string, version int64) error {
	_, err := c.set(ctx, name, version, nil)
	return err
}

func (c *Cache) set(ctx context.Context, name string, version int64, payload []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	n, err := setIfNewer.Run(ctx, c.rdb, []string{c.Key(name)}, version, payload, c.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("cache set: %w", err)
	}
	return n == 1, nil
}
