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
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/fault"
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
}

// New returns a limiter over rdb.
func New(rdb redis.UniversalClient, cfg Config, log *slog.Logger) (*Limiter, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Limiter{rdb: rdb, cfg: cfg, log: log, now: time.Now}, nil
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

// Allow counts one request of key. Past the limit it returns fault.RateLimited
// (429 rate_limited) wrapping *Exceeded. It fails open: when Redis cannot be
// reached the request is let through and a warning logged, as the edge's
// limits do (fault_tolerant), so a Redis outage does not stop checkouts.
func (l *Limiter) Allow(ctx context.Context, key string) error {
	t := l.now()
	start := t.Truncate(l.cfg.Window)
	k := l.cfg.Prefix + key + ":" + strconv.FormatInt(start.Unix(), 10)
	var incr *redis.IntCmd
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, k)
		p.ExpireNX(ctx, k, l.cfg.Window+time.Second)
		return nil
	})
	if err != nil {
		l.log.WarnContext(ctx, "rate limit counter failed; request let through", "prefix", l.cfg.Prefix, "err", err.Error())
		return nil
	}
	if incr.Val() <= l.cfg.Limit {
		return nil
	}
	wait := start.Add(l.cfg.Window).Sub(t)
	return fault.Wrap(&Exceeded{Wait: wait}, fault.RateLimited, fault.CodeRateLimited,
		fmt.Sprintf("too many requests: at most %d per %s", l.cfg.Limit, l.cfg.Window))
}
