package cache_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/cache"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// newCache returns a cache on the real Redis under a random prefix, whose keys
// are removed when the test ends. It fails when Redis is missing, unless -short.
func newCache(t *testing.T) *cache.Cache {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Redis; -short was asked for")
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis is required at 127.0.0.1:6379: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		rdb.Close()
	})
	c, err := cache.New(cache.Config{Redis: redisconn.Config{Addr: "127.0.0.1:6379"}, Prefix: prefix, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func get(t *testing.T, c *cache.Cache, name string) (string, int64, bool) {
	t.Helper()
	p, v, ok, err := c.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return string(p), v, ok
}

func TestVersionedWrites(t *testing.T) {
	ctx := context.Background()
	c := newCache(t)
	if _, _, ok := get(t, c, "p"); ok {
		t.Fatal("hit on an empty cache")
	}
	if ok, err := c.Put(ctx, "p", 1, []byte("v1")); err != nil || !ok {
		t.Fatalf("Put v1 = %v, %v", ok, err)
	}
	if p, v, ok := get(t, c, "p"); !ok || p != "v1" || v != 1 {
		t.Fatalf("Get = %q %d %v", p, v, ok)
	}
	// A writer commits version 2 and invalidates; a slow reader that loaded
	// version 1 before the commit tries to write it back: refused.
	if err := c.Invalidate(ctx, "p", 2); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := get(t, c, "p"); ok {
		t.Fatal("hit after invalidation")
	}
	if ok, _ := c.Put(ctx, "p", 1, []byte("v1")); ok {
		t.Fatal("stale write-back stuck")
	}
	if ok, _ := c.Put(ctx, "p", 2, []byte("v2")); !ok {
		t.Fatal("current version not cached after invalidation")
	}
	if ok, _ := c.Put(ctx, "p", 1, []byte("v1")); ok {
		t.Fatal("older version replaced newer entry")
	}
	if p, v, ok := get(t, c, "p"); !ok || p != "v2" || v != 2 {
		t.Fatalf("Get = %q %d %v, want v2", p, v, ok)
	}
	// Invalidating an older version leaves the newer entry alone.
	if err := c.Invalidate(ctx, "p", 1); err != nil {
		t.Fatal(err)
	}
	if p, _, ok := get(t, c, "p"); !ok || p != "v2" {
		t.Fatalf("older invalidation removed the entry: %q %v", p, ok)
	}
}

// A Redis that cannot be reached does not stop the cache from being built
// (a function whose cache is down still serves from the database), and
// fails every call.
func TestRedisDownIsAnError(t *testing.T) {
	c, err := cache.New(cache.Config{Redis: redisconn.Config{Addr: "127.0.0.1:1"}, Prefix: "x:", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, _, err := c.Get(context.Background(), "p"); err == nil {
		t.Error("Get succeeded with Redis down")
	}
	if err := c.Invalidate(context.Background(), "p", 1); err == nil {
		t.Error("Invalidate succeeded with Redis down")
	}
}

// A cache whose Redis settings are read from the configuration logs in with
// the redis-password secret: it stores and serves entries on a Redis that
// requires the password. Without the secret it is built all the same (the
// cache is an optimisation: a function's build never fails for it), and
// every call fails NOAUTH, which callers take as a miss, counted and logged
// at error level; so does every call once the login is refused after the
// build (the password changed on Redis's side).
func TestTheCacheLogsInWithTheRedisPasswordSecret(t *testing.T) {
	addr := redisconntest.Server(t, "cacheTestPassword")
	ctx := context.Background()
	open := func(secret string) (*cache.Cache, error) {
		ch, err := cache.New(cache.Config{Redis: redisconntest.FromSecret(t, addr, secret, redisconn.ConfigFrom),
			Prefix: "test:product:", TTL: time.Minute})
		if err == nil {
			t.Cleanup(func() { _ = ch.Close() })
		}
		return ch, err
	}

	without, err := open("")
	if err != nil {
		t.Fatalf("New without the secret: %v, want a cache whose calls fail", err)
	}
	if _, _, ok, err := without.Get(ctx, "p"); ok || err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("Get without the secret: hit %v, err %v; want a miss with NOAUTH", ok, err)
	}

	with, err := open("cacheTestPassword\n")
	if err != nil {
		t.Fatalf("New with the secret: %v", err)
	}
	if ok, err := with.Put(ctx, "p", 1, []byte("v1")); err != nil || !ok {
		t.Fatalf("Put with the secret = %v, %v", ok, err)
	}
	if p, v, ok := get(t, with, "p"); !ok || p != "v1" || v != 1 {
		t.Errorf("Get with the secret = %q v%d hit %v, want v1 v1 hit", p, v, ok)
	}

	redisconntest.SetDefaultUser(t, addr, "cacheTestPassword", "resetpass", ">rotatedPassword")
	if _, err := with.Put(ctx, "p", 2, []byte("v2")); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("Put once the password changed = %v, want WRONGPASS", err)
	}
	if _, _, ok, err := with.Get(ctx, "p"); ok || err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("Get once the password changed: hit %v, err %v; want a miss with WRONGPASS", ok, err)
	}
}

// A cache on a Redis whose certificate fails verification (a wrong
// redis-ca) fails each call with the verification error, so the
// caller counts a misconfiguration (redisconn.TLSFailed: reason auth), not an
// outage. With go-redis's default of five dials a call, 100 ms apart, it
// ended as the call's deadline instead, 200 ms later, counted as
// unavailable. The right CA serves.
func TestAWrongCAFailsEachCallWithTheVerificationError(t *testing.T) {
	addr, ca := redisconntest.TLSServer(t, "cacheTestPassword")
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		ca   []byte
	}{{"wrong CA", redisconntest.CA(t)}, {"right CA", ca}} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.New(cache.Config{Redis: redisconntest.FromTLSSecrets(t, addr, "cacheTestPassword", tt.ca, redisconn.ConfigFrom),
				Prefix: "test:product:", TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _, _, err = c.Get(ctx, "p")
			switch {
			case tt.name == "right CA":
				if err != nil {
					t.Errorf("Get with the right CA: %v", err)
				}
			case !redisconn.TLSFailed(err):
				t.Errorf("Get with a wrong CA = %v; want the certificate's verification error, not the call's deadline", err)
			}
		})
	}
}

// New opens no connection: the catalog functions build their cache and may
// then fail their build (the catalog database missing), which fnhttp.Lazy
// retries on every request and probe, so a connection opened by New would be
// one more each time. A listener counts the connections it accepts: none
// after New, one once the cache is first called, so the count is seen to
// work.
func TestNewOpensNoConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	c, err := cache.New(cache.Config{Redis: redisconn.Config{Addr: ln.Addr().String()}, Prefix: "p:", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(200 * time.Millisecond) // a connection dialled in the background has come by then
	if n := accepted.Load(); n != 0 {
		t.Fatalf("New opened %d connections, want none", n)
	}
	_, _, _, _ = c.Get(context.Background(), "x") // fails once dialled: the listener closes what it accepts
	deadline := time.Now().Add(2 * time.Second)
	for accepted.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if accepted.Load() == 0 {
		t.Fatal("the first call opened no connection either: the listener does not count")
	}
}
