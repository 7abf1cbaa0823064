package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// counter increments a fixed-window counter and returns its new value.
type counter interface {
	incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
}

// redisCounter is Kong's redis policy: INCR plus EXPIRE on a shared Redis.
type redisCounter struct{ c *redis.Client }

func (r redisCounter) incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	pipe := r.c.TxPipeline()
	n := pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return n.Val(), nil
}

// localCounter is Kong's local policy: in-memory counters of one edge.
type localCounter struct {
	mu   sync.Mutex
	n    map[string]int64
	exp  map[string]time.Time
	now  func() time.Time
	seen int
}

func (l *localCounter) incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.seen++; l.seen%1000 == 0 {
		for k, e := range l.exp {
			if now.After(e) {
				delete(l.n, k)
				delete(l.exp, k)
			}
		}
	}
	if e, ok := l.exp[key]; ok && now.After(e) {
		delete(l.n, key)
	}
	l.n[key]++
	l.exp[key] = now.Add(ttl)
	return l.n[key], nil
}

// period is one rate-limiting window of Kong's plugin.
type period struct {
	name  string // Kong's header suffix: Second, Minute, ...
	size  time.Duration
	limit int64
}

// rateLimiting is Kong's rate-limiting plugin (fixed windows aligned on
// the clock, counters in Redis for policy redis or in memory for local).
// Identifiers follow limit_by: ip, consumer or credential (from the jwt
// plugin; the client IP when none), header (its value, hashed before it is
// used in a key; the client IP when absent), service or path. Responses
// carry X-RateLimit-Limit-<Period>, X-RateLimit-Remaining-<Period>,
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset; past a limit
// the answer is error_code (429) with Retry-After and a problem body with
// code "rate_limited" (Kong: {"message":"API rate limit exceeded"}). With
// fault_tolerant a counter failure lets the request through, as in Kong.
func rateLimiting(cfg map[string]any, o *Options) (Middleware, error) {
	type redisConf struct {
		Host       string `json:"host"`
		Port       int    `json:"port"`
		Database   int    `json:"database"`
		Timeout    int    `json:"timeout"`
		Username   string `json:"username"`
		Password   string `json:"password"`
		SSL        bool   `json:"ssl"`
		SSLVerify  bool   `json:"ssl_verify"`
		ServerName string `json:"server_name"`
	}
	c := struct {
		Second, Minute, Hour, Day *int64
		LimitBy                   string     `json:"limit_by"`
		HeaderName                string     `json:"header_name"`
		Path                      string     `json:"path"`
		Policy                    string     `json:"policy"`
		FaultTolerant             bool       `json:"fault_tolerant"`
		HideClientHeaders         bool       `json:"hide_client_headers"`
		ErrorCode                 int        `json:"error_code"`
		ErrorMessage              string     `json:"error_message"`
		SyncRate                  float64    `json:"sync_rate"`
		Redis                     *redisConf `json:"redis"`
	}{LimitBy: "consumer", Policy: "local", FaultTolerant: true, ErrorCode: 429,
		ErrorMessage: "API rate limit exceeded", SyncRate: -1}
	if err := decodeConfig(cfg, &c); err != nil {
		return nil, fmt.Errorf("rate-limiting: %w", err)
	}
	var periods []period
	for _, p := range []struct {
		name  string
		size  time.Duration
		limit *int64
	}{{"Second", time.Second, c.Second}, {"Minute", time.Minute, c.Minute}, {"Hour", time.Hour, c.Hour}, {"Day", 24 * time.Hour, c.Day}} {
		if p.limit != nil {
			if *p.limit <= 0 {
				return nil, fmt.Errorf("rate-limiting: %s must be positive", p.name)
			}
			periods = append(periods, period{p.name, p.size, *p.limit})
		}
	}
	if len(periods) == 0 {
		return nil, fmt.Errorf("rate-limiting: at least one of second, minute, hour, day is required")
	}
	switch c.LimitBy {
	case "ip", "consumer", "credential", "service":
	case "header":
		if c.HeaderName == "" {
			return nil, fmt.Errorf("rate-limiting: limit_by header needs header_name")
		}
	case "path":
		if c.Path == "" {
			return nil, fmt.Errorf("rate-limiting: limit_by path needs path")
		}
	default:
		return nil, fmt.Errorf("rate-limiting: limit_by %q is not supported", c.LimitBy)
	}
	var store counter
	switch c.Policy {
	case "local":
		store = &localCounter{n: map[string]int64{}, exp: map[string]time.Time{}, now: o.Now}
	case "redis":
		if c.Redis == nil || c.Redis.Host == "" {
			return nil, fmt.Errorf("rate-limiting: policy redis needs redis.host")
		}
		if c.Redis.Password != "" || c.Redis.Username != "" || c.Redis.SSL {
			return nil, fmt.Errorf("rate-limiting: redis authentication and TLS are not supported by the local edge")
		}
		port := c.Redis.Port
		if port == 0 {
			port = 6379
		}
		store = redisCounter{o.shared.redisClient(net.JoinHostPort(c.Redis.Host, strconv.Itoa(port)), c.Redis.Database)}
	default:
		return nil, fmt.Errorf("rate-limiting: policy %q (local or redis; DB-less Kong has no cluster policy)", c.Policy)
	}
	if c.ErrorCode < 400 || c.ErrorCode > 599 {
		return nil, fmt.Errorf("rate-limiting: error_code %d", c.ErrorCode)
	}
	scope, prefix, now, log := o.scope, o.KeyPrefix, o.Now, o.Log
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ident := clientIP(r)
			switch c.LimitBy {
			case "consumer", "credential":
				if id, ok := identityOf(r); ok {
					ident = "c:" + id.consumer
					if c.LimitBy == "credential" {
						ident = "k:" + id.credential
					}
				}
			case "header":
				if v := r.Header.Get(c.HeaderName); v != "" {
					sum := sha256.Sum256([]byte(v))
					ident = "h:" + hex.EncodeToString(sum[:16])
				}
			case "service":
				ident = "service"
			case "path":
				if r.URL.Path != c.Path {
					next.ServeHTTP(w, r)
					return
				}
				ident = "path:" + c.Path
			}
			t := now()
			exceeded := false
			var retryAfter int64
			minRemaining, minLimit, minReset := int64(-1), int64(0), int64(0)
			for _, p := range periods {
				start := t.Truncate(p.size)
				reset := int64((start.Add(p.size).Sub(t) + time.Second - 1) / time.Second)
				key := fmt.Sprintf("%sratelimit:%s:%s:%d:%s", prefix, scope, ident, start.Unix(), p.name)
				n, err := store.incr(r.Context(), key, p.size+time.Second)
				if err != nil {
					if !c.FaultTolerant {
						writeProblem(w, http.StatusInternalServerError, "internal", "rate limiting is unavailable")
						return
					}
					log.Warn("edge: rate-limiting counter failed; request let through", "scope", scope, "err", err.Error())
					next.ServeHTTP(w, r)
					return
				}
				remaining := max(p.limit-n, 0)
				if n > p.limit {
					exceeded = true
					retryAfter = max(retryAfter, reset)
				}
				if !c.HideClientHeaders {
					w.Header().Set("X-RateLimit-Limit-"+p.name, strconv.FormatInt(p.limit, 10))
					w.Header().Set("X-RateLimit-Remaining-"+p.name, strconv.FormatInt(remaining, 10))
				}
				if minRemaining < 0 || remaining < minRemaining {
					minRemaining, minLimit, minReset = remaining, p.limit, reset
				}
			}
			if !c.HideClientHeaders {
				w.Header().Set("RateLimit-Limit", strconv.FormatInt(minLimit, 10))
				w.Header().Set("RateLimit-Remaining", strconv.FormatInt(minRemaining, 10))
				w.Header().Set("RateLimit-Reset", strconv.FormatInt(minReset, 10))
			}
			if exceeded {
				w.Header().Set("Retry-After", strconv.FormatInt(retryAfter, 10))
				writeProblem(w, c.ErrorCode, "rate_limited", c.ErrorMessage)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// clientIP is the connection's peer address (Kong's client IP when no
// trusted proxy sets X-Forwarded-For).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return "ip:" + r.RemoteAddr
	}
	return "ip:" + host
}
