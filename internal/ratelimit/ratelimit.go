// Package ratelimit counts requests per key in fixed clock windows in Redis,
// for the limits the edge cannot key correctly: Kong's rate-limiting plugin
// knows the client IP, a consumer or a header's raw value, but not the
// subject of a verified token (every customer is the one consumer
// "shop-users"), so a per-customer limit keyed on the raw Authorization
// header is bypassed by writing the header differently. A function that has
// verified the token limits on the subject itself with this package.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Config is one limit.
type Config struct {
	// Prefix starts every Redis key of this limit (for example
	// "shop:ratelimit:create-order:"); tests use a random one.
	Prefix string
	// Limit is how many requests a key may make per Window (required, > 0).
	Limit int64
	// Window is the length of a fixed window aligned on the clock (default
	// one minute).
	Window time.Duration
}

func (c *Config) setDefaults() {
	if c.Window <= 0 {
		c.Window = time.Minute
	}
}

// Validate reports a missing prefix or a non-positive limit.
func (c Config) Validate() error {
	var errs []error
	if c.Prefix == "" {
		errs = append(errs, errors.New("ratelimit: Prefix is required"))
	}
	if c.Limit <= 0 {
		errs = append(errs, errors.New("ratelimit: Limit must be positive"))
	}
	return errors.Join(errs...)
}

// Limiter enforces one Config. It is safe for concurrent use; the counters
// live in Redis, so every replica of a function shares them.
type Limiter struct {
	rdb redis.UniversalClient
	cfg Config
	log *slog.Logger
	now func() time.Time

	// refused remembers, in this process, the keys Allow refused and the end
	// of the window they were refused in (Refused).
	mu      sync.Mutex
	refused map[string]time.Time

	// unreachable throttles the warning of a request let through while
	// Redis cannot be reached: one line a minute, with the count of those
	// not logged, and one line when a count succeeds again.
	unreachable telemetry.Repeats
	// refundFailed throttles the warning of a Refund that failed, the same
	// way.
	refundFailed telemetry.Repeats
}

// refusedCap bounds the keys a Limiter remembers as refused; past it the
// memory is pruned of ended windows, then forgotten (it only saves work).
const refusedCap = 4096

// Options are the go-redis options of a limiter's own client for cfg's
// Redis (Open): a small pool, one try per count and one dial per try. A
// count is not retried (MaxRetries -1): an INCR whose reply was lost may have
// counted, and a retry would count the request twice. Nor is a dial
// (DialerRetries 1): go-redis's default dials five times, 100 ms apart, and
// on the carts' client, with its retries, a login waited 1.7 to 3.4 s while
// Redis was down before it was let through (measured on 2026-12-05); with
// these options it is let through as soon as the dial is refused.
func Options(cfg redisconn.Config) *redis.Options {
	opts := redisconn.Options(cfg)
	opts.PoolSize, opts.MinIdleConns = 4, 0
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, time.Second, time.Second
	opts.MaxRetries, opts.DialerRetries = -1, 1
	// A count is a pipeline: without this go-redis runs it on a pipeline
	// pool of its own (10 connections), falling back to this one on a
	// failed dial, which dialled twice.
	opts.PipelinePoolSize = -1
	return opts
}

// Open returns a client with Options for a limiter, its login checked as it
// builds (redisconn.Open: a refused login or a certificate that fails
// verification fails the build; an outage does not).
func Open(ctx context.Context, cfg redisconn.Config) (*redis.Client, error) {
	return redisconn.Open(ctx, Options(cfg))
}

// New returns a limiter over rdb (Open's, in the functions).
func New(rdb redis.UniversalClient, cfg Config, log *slog.Logger) (*Limiter, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Limiter{rdb: rdb, cfg: cfg, log: log, now: time.Now, refused: map[string]time.Time{}}, nil
}

// Exceeded is the cause of the fault Allow returns past the limit: how long
// until the window ends. fnhttp answers it with a Retry-After header.
type Exceeded struct {
	// Wait is the time until the next window.
	Wait time.Duration
}

func (e *Exceeded) Error() string { return fmt.Sprintf("rate limit exceeded; retry in %s", e.Wait) }

// RetryAfter is the time until a retry may succeed.
func (e *Exceeded) RetryAfter() time.Duration { return e.Wait }

// Allow counts one request of key: INCR of the window's key and EXPIRE NX,
// pipelined in one write and one round trip. They need no MULTI/EXEC (issue
// 11: MULTI, EXEC and two QUEUED replies were half the commands, and EXEC
// costs Redis more than the two commands it runs): every count sets the
// expiry the key lacks, so a key whose expiry another caller's count has not
// set yet gets it from this one, and the count itself is one atomic INCR.
// Past the limit it returns fault.RateLimited (429 rate_limited) wrapping *Exceeded. It fails open: when Redis cannot be
// reached the request is let through and a warning logged (one a minute,
// with the count of those not logged, and a line when Redis counts again),
// as the edge's
// limits do (fault_tolerant), so a Redis outage does not stop checkouts. A
// count cut by ctx ending is not an outage: it is fault.Timeout, so a
// caller that hangs up at once is never let through uncounted. Nor is a
// Redis that refuses the login (NOAUTH, WRONGPASS: the redis-password
// secret is wrong or missing) or the count (NOPERM: its ACL denies the
// user a command or key; redisconn.AuthFailed): that is a configuration
// error, which fail-open would turn into limits silently off while Redis is
// up, so it is fault.Unavailable (503), its cause naming the secret (never
// the password) for the caller's error log. The same holds for Redis's TLS
// certificate failing verification (redisconn.TLSFailed: a wrong redis-ca
// secret, or a REDIS_ADDR host the certificate is not for): both are
// redisconn.Misconfigured. A function whose client redisconn.Open built
// has already failed its build on either as it stood then; Allow meets
// those that began after (Redis's password or ACL changed, its certificate
// renewed by another authority), or a client built otherwise.
func (l *Limiter) Allow(ctx context.Context, key string) error {
	_, err := l.Count(ctx, key)
	return err
}

// Count is Allow that also reports whether it counted the request in Redis:
// false when it let the request through uncounted (Redis could not be
// reached) or refused it before counting (fault.Timeout, a misconfigured
// Redis), true otherwise, refusals past the limit included. A caller that
// gives a count back (Refund) must give back only one Count made: a refund
// of a request never counted would take off another request's count.
func (l *Limiter) Count(ctx context.Context, key string) (counted bool, err error) {
	t := l.now()
	start := t.Truncate(l.cfg.Window)
	k := l.windowKey(key, start)
	var incr *redis.IntCmd
	_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, k)
		p.ExpireNX(ctx, k, l.cfg.Window+time.Second)
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return false, fault.Wrap(err, fault.Timeout, fault.CodeTimeout, "the request ended before it was counted")
	}
	if err != nil && redisconn.Misconfigured(err) {
		return false, fault.Wrap(fmt.Errorf("rate limit %s: %s: %w", l.cfg.Prefix, redisconn.Refused(err), err),
			fault.Unavailable, fault.CodeUnavailable, "service temporarily unavailable")
	}
	if err != nil {
		if log, suppressed := l.unreachable.Log("", t); log {
			l.log.WarnContext(ctx, "rate limit counter failed; request let through",
				append([]any{"prefix", l.cfg.Prefix, "err", err.Error()}, telemetry.SuppressedAttrs(suppressed)...)...)
		}
		return false, nil
	}
	if recovered, suppressed := l.unreachable.Recovered(); recovered {
		l.log.InfoContext(ctx, "rate limit counter recovered",
			append([]any{"prefix", l.cfg.Prefix}, telemetry.SuppressedAttrs(suppressed)...)...)
	}
	if incr.Val() <= l.cfg.Limit {
		return true, nil
	}
	end := start.Add(l.cfg.Window)
	l.remember(key, end, t)
	return true, l.exceeded(end.Sub(t))
}

// windowKey is the Redis key of key's count in the window that starts at start.
func (l *Limiter) windowKey(key string, start time.Time) string {
	return l.cfg.Prefix + key + ":" + strconv.FormatInt(start.Unix(), 10)
}

// refundTimeout bounds a Refund, which runs past its caller's end.
const refundTimeout = time.Second

// refund takes one count back from a window's key, never below zero and
// never creating the key (an expired window's, or one Redis lost). It is a
// script of GET and SET KEEPTTL, atomic as DECR is, because the functions'
// Redis user may run scripts, GET and SET but not DECR (docs/security.md,
// the Redis row).
var refund = redis.NewScript(`local n = tonumber(redis.call('GET', KEYS[1]))
if n and n > 0 then
  redis.call('SET', KEYS[1], n - 1, 'KEEPTTL')
  return n - 1
end
return 0`)

// Refund gives back one count Count made for key (it answered counted), for a request that turned
// out to cost nothing the limit guards: login-user refunds a login whose
// password was never checked (hash slots busy, database down, client gone),
// so that a client following Retry-After does not spend the limit on
// failures of the server's. It takes the count from the window current now,
// never below zero: a refund that crosses a window's end lands on the next
// window, where it can give back at most the counts refunded, so any two
// windows in a row still hold at most twice the limit, as fixed windows
// already allow across their boundary. It runs even when ctx has ended (a
// client that hung up is refunded too), for at most refundTimeout; a failed
// refund is logged (one warning a minute, with the count of those not
// logged) and leaves the count standing.
func (l *Limiter) Refund(ctx context.Context, key string) {
	t := l.now()
	k := l.windowKey(key, t.Truncate(l.cfg.Window))
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer cancel()
	if err := refund.Run(rctx, l.rdb, []string{k}).Err(); err != nil {
		if log, suppressed := l.refundFailed.Log("", t); log {
			l.log.WarnContext(ctx, "rate limit refund failed; the count stands",
				append([]any{"prefix", l.cfg.Prefix, "err", err.Error()}, telemetry.SuppressedAttrs(suppressed)...)...)
		}
		return
	}
	l.refundFailed.Recovered()
}

// Refused answers, from this process's memory alone (no Redis), the refusal
// Allow gave key earlier in the current window, and nil otherwise. A key
// refused stays refused until its window ends (counts only grow within a
// window, on a limit that is never refunded: Refund can bring a refused
// key's count back under the limit, and Refused would not know), so a caller can refuse a request before starting any work for it
// and call Allow only when Refused says nil. Another replica's refusals are
// not known here: Allow finds them.
func (l *Limiter) Refused(key string) error {
	t := l.now()
	l.mu.Lock()
	end, ok := l.refused[key]
	l.mu.Unlock()
	if !ok || !t.Before(end) {
		return nil
	}
	return l.exceeded(end.Sub(t))
}

func (l *Limiter) remember(key string, end, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.refused) >= refusedCap {
		for k, e := range l.refused {
			if !now.Before(e) {
				delete(l.refused, k)
			}
		}
		if len(l.refused) >= refusedCap {
			clear(l.refused)
		}
	}
	l.refused[key] = end
}

// exceeded is the refusal: 429 rate_limited, retry after wait.
func (l *Limiter) exceeded(wait time.Duration) error {
	return fault.Wrap(&Exceeded{Wait: wait}, fault.RateLimited, fault.CodeRateLimited,
		fmt.Sprintf("too many requests: at most %d per %s", l.cfg.Limit, l.cfg.Window))
}
