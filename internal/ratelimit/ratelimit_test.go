package ratelimit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/ratelimit"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// limiter returns a limiter on the real Redis under a random prefix whose
// keys are deleted when the test ends.
// scratchRedis is a client of the real Redis (poolSize connections, 0 for
// the default) and a random key prefix whose keys are deleted, and the client
// closed, when the test ends.
func scratchRedis(t *testing.T, poolSize int) (*redis.Client, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Redis")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "test:" + hex.EncodeToString(b) + ":ratelimit:"
	rdb := redis.NewClient(&redis.Options{Addr: cartredistest.Addr(), PoolSize: poolSize})
	ctx := context.Background()
	t.Cleanup(func() {
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return rdb, prefix
}

func limiter(t *testing.T, limit int64, window time.Duration) *ratelimit.Limiter {
	t.Helper()
	rdb, prefix := scratchRedis(t, 0)
	l, err := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Limit: limit, Window: window}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLimitPerKeyAcrossConcurrentCallers(t *testing.T) {
	l := limiter(t, 30, time.Hour)
	var allowed, refused atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			err := l.Allow(context.Background(), "user-a")
			var ex *ratelimit.Exceeded
			switch {
			case err == nil:
				allowed.Add(1)
			case fault.Is(err, fault.RateLimited, fault.CodeRateLimited) && errors.As(err, &ex) && ex.RetryAfter() > 0:
				refused.Add(1)
			default:
				t.Errorf("Allow: %v", err)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 30 || refused.Load() != 20 {
		t.Errorf("allowed %d refused %d, want 30 and 20", allowed.Load(), refused.Load())
	}
	if err := l.Allow(context.Background(), "user-b"); err != nil {
		t.Errorf("another key shares the budget: %v", err)
	}
}

// TestFailsOpenWithoutRedis: a Redis that cannot be reached lets every
// request through, and says so in one warning a minute, with the count of
// those it did not log: one line per request would be thousands a second
// under load, as long as the outage lasts.
func TestFailsOpenWithoutRedis(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1,
		DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	defer rdb.Close()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	l, err := ratelimit.New(rdb, ratelimit.Config{Prefix: "x:", Limit: 1}, log)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ratelimit.SetClock(l, func() time.Time { return now })
	allow := func(n int) {
		t.Helper()
		for range n {
			if err := l.Allow(context.Background(), "k"); err != nil {
				t.Fatalf("Allow with Redis down: %v, want the request let through", err)
			}
		}
	}
	allow(30)
	if lines := strings.Count(logged.String(), "request let through"); lines != 1 {
		t.Fatalf("30 requests let through in one minute logged %d warnings, want 1:\n%s", lines, logged.String())
	}
	now = now.Add(time.Minute)
	allow(1)
	if lines := strings.Count(logged.String(), "request let through"); lines != 2 || !strings.Contains(logged.String(), "suppressed=29") {
		t.Fatalf("a minute later: %d warnings, want 2, the second with suppressed=29:\n%s", lines, logged.String())
	}
}

// A Redis that refuses the limiter's login (a wrong or missing
// redis-password secret: WRONGPASS, NOAUTH) or its count (an ACL that denies
// the user the command: NOPERM) is a configuration error, not an outage: the
// request is refused as unavailable (503), the error naming the secret and
// not the password, so the limits are not silently off while Redis itself is
// up. A Redis that cannot be reached still lets requests through
// (TestFailsOpenWithoutRedis).
func TestARedisThatRefusesTheLoginRefusesTheRequest(t *testing.T) {
	const password = "limitTestPassword"
	addr := redisconntest.Server(t, password)
	denied := redisconntest.Server(t, password)
	redisconntest.SetDefaultUser(t, denied, password, "-incr")
	for _, tt := range []struct{ name, addr, secret string }{
		{"wrong password", addr, "wrongPassword\n"},
		{"no password", addr, ""},
		{"INCR denied", denied, password},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := limiterOn(t, ratelimit.Options(redisconntest.FromSecret(t, tt.addr, tt.secret, redisconn.ConfigFrom)), 100)
			for range 2 {
				err := l.Allow(context.Background(), "k")
				if !fault.Is(err, fault.Unavailable, fault.CodeUnavailable) {
					t.Fatalf("Allow = %v, want an unavailable fault (503)", err)
				}
				if !strings.Contains(err.Error(), "redis-password") || strings.Contains(err.Error(), "wrongPassword") {
					t.Errorf("Allow = %q: want it to name the redis-password secret and not the password", err)
				}
			}
		})
	}
	l := limiterOn(t, ratelimit.Options(redisconntest.FromSecret(t, addr, password, redisconn.ConfigFrom)), 1)
	if err := l.Allow(context.Background(), "k"); err != nil {
		t.Fatalf("Allow with the password: %v", err)
	}
	if err := l.Allow(context.Background(), "k"); !fault.Is(err, fault.RateLimited, fault.CodeRateLimited) {
		t.Fatalf("second Allow with the password: %v, want rate limited", err)
	}
}

// A Redis that requires TLS and whose certificate fails verification (the
// redis-ca secret holds another authority, or REDIS_ADDR names a host the
// certificate is not for) refuses the request as unavailable (503) naming
// redis-ca, as a refused login does: failing open would turn the limits off
// while Redis is up. (A function's build fails on such a certificate,
// redisconn.Open; this is one that began to fail after the build.) With its
// CA the limit counts over TLS.
func TestACertificateThatFailsVerificationRefusesTheRequest(t *testing.T) {
	addr, ca := redisconntest.TLSServer(t, "")
	_, port, _ := strings.Cut(addr, ":")
	limiterFor := func(t *testing.T, addr string, ca []byte) *ratelimit.Limiter {
		return limiterOn(t, ratelimit.Options(redisconntest.FromTLSSecrets(t, addr, "", ca, redisconn.ConfigFrom)), 1)
	}
	for _, tt := range []struct {
		name string
		addr string
		ca   []byte
	}{
		{"wrong CA", addr, redisconntest.CA(t)},
		{"name mismatch", "127.0.0.1:" + port, ca},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := limiterFor(t, tt.addr, tt.ca).Allow(context.Background(), "k")
			if !fault.Is(err, fault.Unavailable, fault.CodeUnavailable) || !strings.Contains(err.Error(), "redis-ca") {
				t.Fatalf("Allow = %v, want an unavailable fault (503) naming redis-ca", err)
			}
		})
	}
	l := limiterFor(t, addr, ca)
	if err := l.Allow(context.Background(), "k"); err != nil {
		t.Fatalf("Allow with the CA: %v", err)
	}
	if err := l.Allow(context.Background(), "k"); !fault.Is(err, fault.RateLimited, fault.CodeRateLimited) {
		t.Fatalf("second Allow with the CA: %v, want rate limited", err)
	}
}

// A count its caller's context cut is no Redis outage: the request is not
// let through uncounted (until 2026-12-05 it was, so a client that hung up
// at once got past the checkout limit: its checkout runs detached).
func TestACountCutByItsCallerIsNotLetThrough(t *testing.T) {
	l := limiter(t, 1, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 3 {
		if err := l.Allow(ctx, "k"); !fault.Is(err, fault.Timeout, fault.CodeTimeout) {
			t.Fatalf("Allow on an ended context: %v, want a timeout fault", err)
		}
	}
}

// Refund gives back one count of the current window, even on an ended
// context, never below zero and never creating a key; the window keeps
// its expiry.
func TestRefundGivesBackOneCountNeverBelowZero(t *testing.T) {
	rdb, prefix := scratchRedis(t, 0)
	l, err := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Limit: 2, Window: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ended, cancel := context.WithCancel(ctx)
	cancel()
	l.Refund(ended, "never-counted")
	if keys, err := rdb.Keys(ctx, prefix+"never-counted*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("a refund of a key never counted left keys %v (%v)", keys, err)
	}
	for range 2 {
		if err := l.Allow(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 { // more refunds than counts
		l.Refund(ended, "k")
	}
	keys, err := rdb.Keys(ctx, prefix+"k:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("window keys %v (%v), want one", keys, err)
	}
	if n, err := rdb.Get(ctx, keys[0]).Int64(); err != nil || n != 0 {
		t.Fatalf("count after more refunds than counts = %d (%v), want 0", n, err)
	}
	if ttl, err := rdb.TTL(ctx, keys[0]).Result(); err != nil || ttl <= 0 {
		t.Fatalf("the window's key lost its expiry: TTL %v (%v)", ttl, err)
	}
	for i := range 2 {
		if err := l.Allow(ctx, "k"); err != nil {
			t.Fatalf("count %d after the refunds: %v", i+1, err)
		}
	}
	if err := l.Allow(ctx, "k"); !fault.Is(err, fault.RateLimited, fault.CodeRateLimited) {
		t.Fatalf("third count after the refunds: %v, want rate_limited", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := ratelimit.New(nil, ratelimit.Config{}, nil); err == nil {
		t.Error("an empty config was accepted")
	}
}

// A key Allow refused is refused by Refused, without Redis, until its window
// ends; a key never refused, or refused in an ended window, is not.
func TestRefusedRemembersRefusalsUntilTheWindowEnds(t *testing.T) {
	l := limiter(t, 2, time.Hour)
	now := time.Now().Truncate(time.Hour).Add(10 * time.Minute)
	ratelimit.SetClock(l, func() time.Time { return now })
	ctx := context.Background()
	for i := range 2 {
		if err := l.Allow(ctx, "user-a"); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if err := l.Refused("user-a"); err != nil {
			t.Fatalf("within the limit, Refused = %v", err)
		}
	}
	if err := l.Allow(ctx, "user-a"); !fault.Is(err, fault.RateLimited, fault.CodeRateLimited) {
		t.Fatalf("third request: %v, want rate_limited", err)
	}
	now = now.Add(20 * time.Minute)
	err := l.Refused("user-a")
	var ex *ratelimit.Exceeded
	if !fault.Is(err, fault.RateLimited, fault.CodeRateLimited) || !errors.As(err, &ex) || ex.RetryAfter() != 30*time.Minute {
		t.Fatalf("Refused after a refusal = %v, want rate_limited, retry in 30m", err)
	}
	if err := l.Refused("user-b"); err != nil {
		t.Errorf("a key never refused: %v", err)
	}
	now = now.Add(30 * time.Minute) // the next window
	if err := l.Refused("user-a"); err != nil {
		t.Errorf("in the next window Refused = %v, want nil", err)
	}
	if err := l.Allow(ctx, "user-a"); err != nil {
		t.Errorf("in the next window Allow = %v", err)
	}
}

// The end of an outage is logged: the first count after requests were let
// through logs one line with the count of those not logged since the last
// warning (until 2026-12-05 that count was lost, and an outage that began
// again within a minute of the last warning logged nothing); the next
// outage's first request is logged at once.
func TestTheEndOfAnOutageIsLoggedWithItsCount(t *testing.T) {
	addr := redisconntest.Server(t, "")
	var down atomic.Bool
	down.Store(true)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Millisecond,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if down.Load() {
				return nil, errors.New("redis is down (test)")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}})
	defer rdb.Close()
	var logged bytes.Buffer
	l, err := ratelimit.New(rdb, ratelimit.Config{Prefix: "x:", Limit: 1000}, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	allow := func(n int) {
		t.Helper()
		for range n {
			if err := l.Allow(context.Background(), "k"); err != nil {
				t.Fatalf("Allow: %v, want the request let through", err)
			}
		}
	}
	allow(10)
	down.Store(false)
	allow(3)
	out := logged.String()
	if strings.Count(out, "request let through") != 1 || strings.Count(out, "rate limit counter recovered") != 1 ||
		!strings.Contains(out, "suppressed=9") {
		t.Fatalf("10 requests let through, then 3 counted: want one warning and one recovery line with suppressed=9:\n%s", out)
	}
	// Down again, at once: the kept connection is closed, and no new one opens.
	down.Store(true)
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	allow(1)
	if lines := strings.Count(logged.String(), "request let through"); lines != 2 {
		t.Fatalf("a new outage within the minute: %d warnings, want 2:\n%s", lines, logged.String())
	}
}

// A limiter's client tries a count once, dialling once: while Redis is
// down a request is let through as soon as the dial is refused. On the
// carts' client (three retries, go-redis's five dials 100 ms apart in each)
// the first logins waited 1.7 to 3.4 s before being let through. Counted
// with a dialer that refuses as a stopped Redis does.
func TestALimiterDialsOncePerCount(t *testing.T) {
	opts := ratelimit.Options(redisconn.Config{Addr: "127.0.0.1:1"})
	var dials atomic.Int32
	opts.Dialer = func(context.Context, string, string) (net.Conn, error) {
		dials.Add(1)
		return nil, syscall.ECONNREFUSED
	}
	l := limiterOn(t, opts, 1)
	if err := l.Allow(context.Background(), "k"); err != nil {
		t.Fatalf("Allow with Redis down: %v, want the request let through", err)
	}
	// The carts' client's options dialled 41 times.
	if n := dials.Load(); n != 1 {
		t.Errorf("one count with Redis down dialled %d times, want 1", n)
	}
}

// limiterOn returns a limiter of limit counts per window on a client with
// opts (ratelimit.Options, as the functions build theirs), closed with t.
func limiterOn(t *testing.T, opts *redis.Options, limit int64) *ratelimit.Limiter {
	t.Helper()
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	l, err := ratelimit.New(rdb, ratelimit.Config{Prefix: "x:", Limit: limit}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
