package edge

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shopfaas/shop/internal/fault"
)

// RateLimitingConfig is the config of Kong's rate-limiting plugin. At least
// one window limit is required.
type RateLimitingConfig struct {
	// Second is the limit per second, when set.
	Second *int64 `json:"second"`
	// Minute is the limit per minute, when set.
	Minute *int64 `json:"minute"`
	// Hour is the limit per hour, when set.
	Hour *int64 `json:"hour"`
	// Day is the limit per day, when set.
	Day *int64 `json:"day"`
	// LimitBy is what is counted: ip, consumer (default), credential,
	// header, service or path.
	LimitBy string `json:"limit_by"`
	// HeaderName is the header counted with limit_by header.
	HeaderName string `json:"header_name"`
	// Path is the path counted with limit_by path.
	Path string `json:"path"`
	// Policy is where counters live: local (default, this edge's memory) or
	// redis (shared); DB-less Kong has no cluster policy.
	Policy string `json:"policy"`
	// FaultTolerant lets requests through when the counters fail (default true).
	FaultTolerant bool `json:"fault_tolerant"`
	// HideClientHeaders drops the X-RateLimit-* and RateLimit-* headers.
	HideClientHeaders bool `json:"hide_client_headers"`
	// ErrorCode answers a request over the limit (default 429).
	ErrorCode int `json:"error_code"`
	// ErrorMessage is the detail of that answer (default "API rate limit exceeded").
	ErrorMessage string `json:"error_message"`
	// SyncRate is Kong's counter sync interval; accepted, unused locally.
	SyncRate float64 `json:"sync_rate"`
	// Redis is the shared Redis of policy redis.
	Redis *RateLimitingRedis `json:"redis"`
}

// RateLimitingRedis is the redis block of the rate-limiting plugin. The
// local edge logs in with a password given as a vault reference and an
// optional ACL user name, as Kong does, and dials TLS as Kong 3.9 does
// (kong/tools/redis/schema.lua: ssl, ssl_verify, server_name), verifying
// always.
type RateLimitingRedis struct {
	// Host is Redis's host, rewritten by Options.Upstreams (required).
	Host string `json:"host"`
	// Port is Redis's port (default 6379).
	Port int `json:"port"`
	// Database is the Redis database number.
	Database int `json:"database"`
	// Timeout is Kong's Redis timeout (ms); unused locally.
	Timeout int `json:"timeout"`
	// Username is the Redis ACL user the counters log in as, with
	// Password. As in Kong 3.9 (policies/init.lua: AUTH username password
	// only when the password is present), it is not sent when the password
	// resolves empty: locally the machine's Redis has no ACL users and the
	// edge sends no AUTH.
	Username string `json:"username"`
	// Password is Redis's password: a {vault://env/NAME} reference (a
	// password written in the file is refused: secrets stay out of it).
	// As in Kong, whose field is referenceable, a reference that does not
	// resolve (NAME unset or empty) is an empty password: no AUTH is sent.
	Password string `json:"password"`
	// SSL dials Redis over TLS (TLS 1.2 or later).
	SSL bool `json:"ssl"`
	// SSLVerify verifies Redis's certificate against Options.RedisRoots
	// (Kong: lua_ssl_trusted_certificate). Required with SSL locally: the
	// local edge does not speak TLS without verification.
	SSLVerify bool `json:"ssl_verify"`
	// ServerName is the name Redis's certificate must be for (and the SNI);
	// Host when empty.
	ServerName string `json:"server_name"`
}

func (c *RateLimitingConfig) setDefaults() {
	c.LimitBy, c.Policy, c.FaultTolerant = "consumer", "local", true
	c.ErrorCode, c.ErrorMessage, c.SyncRate = http.StatusTooManyRequests, "API rate limit exceeded", -1
}

// Validate reports missing or non-positive limits, an unknown limit_by or
// policy (and what each needs, a limit_by path's path as Kong's schema
// takes it: from /, no empty segment), a Redis password that is not a vault
// reference, Redis TLS without verification, and an error code that is not 4xx or
// 5xx.
func (c *RateLimitingConfig) Validate() error {
	var errs []error
	if len(c.periods()) == 0 {
		errs = append(errs, errors.New("at least one of second, minute, hour, day is required"))
	}
	for _, p := range c.periods() {
		if p.limit <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", strings.ToLower(p.name)))
		}
	}
	switch c.LimitBy {
	case "ip", "consumer", "credential", "service":
	case "header":
		if c.HeaderName == "" {
			errs = append(errs, errors.New("limit_by header needs header_name"))
		}
	case "path":
		// Kong's typedefs.path: anything else could never equal the
		// request's normalised path.
		switch {
		case c.Path == "":
			errs = append(errs, errors.New("limit_by path needs path"))
		case !strings.HasPrefix(c.Path, "/"):
			errs = append(errs, fmt.Errorf("path %q must start with /", c.Path))
		case strings.Contains(c.Path, "//"):
			errs = append(errs, fmt.Errorf("path %q must not have empty segments", c.Path))
		}
	default:
		errs = append(errs, fmt.Errorf("limit_by %q is not supported", c.LimitBy))
	}
	switch c.Policy {
	case "local":
	case "redis":
		switch {
		case c.Redis == nil || c.Redis.Host == "":
			errs = append(errs, errors.New("policy redis needs redis.host"))
		case c.Redis.SSL && !c.Redis.SSLVerify:
			errs = append(errs, errors.New("redis.ssl without redis.ssl_verify: the local edge does not speak TLS to Redis without verifying its certificate"))
		case c.Redis.Password != "" && !isReference(c.Redis.Password):
			errs = append(errs, errors.New("redis.password must be a {vault://env/NAME} reference: no secret is written in the file"))
		}
	default:
		errs = append(errs, fmt.Errorf("policy %q (local or redis; DB-less Kong has no cluster policy)", c.Policy))
	}
	if c.ErrorCode < 400 || c.ErrorCode > 599 {
		errs = append(errs, fmt.Errorf("error_code %d", c.ErrorCode))
	}
	return errors.Join(errs...)
}

// period is one rate-limiting window.
type period struct {
	name  string // Kong's header suffix: Second, Minute, ...
	size  time.Duration
	limit int64
}

// periods are the configured windows, shortest first.
func (c *RateLimitingConfig) periods() []period {
	var out []period
	for _, p := range []struct {
		name  string
		size  time.Duration
		limit *int64
	}{{"Second", time.Second, c.Second}, {"Minute", time.Minute, c.Minute}, {"Hour", time.Hour, c.Hour}, {"Day", 24 * time.Hour, c.Day}} {
		if p.limit != nil {
			out = append(out, period{p.name, p.size, *p.limit})
		}
	}
	return out
}

// rateLimiting is Kong's rate-limiting plugin: fixed windows aligned on the
// clock, counters in Redis (policy redis) or in memory (local). Identifiers
// follow limit_by: ip, consumer or credential (from the jwt plugin; the
// client IP when none), header (its value, hashed before it is used in a
// key; the client IP when absent), service or path. Responses carry
// X-RateLimit-Limit-<Period>, X-RateLimit-Remaining-<Period>,
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset; past a limit the
// answer is error_code (429) with Retry-After and a problem body with code
// "rate_limited" (Kong: {"message":"API rate limit exceeded"}). With
// fault_tolerant a counter failure lets the request through, as in Kong.
type rateLimiting struct {
	cfg     RateLimitingConfig
	periods []period
	store   counter
	scope   string // separates the counters of different routes
	prefix  string // separates the counters of different edges
	now     func() time.Time
	log     *slog.Logger
}

func newRateLimiting(c RateLimitingConfig, sc *scope) (plugin, error) {
	p := &rateLimiting{cfg: c, periods: c.periods(), scope: sc.name, prefix: sc.keyPrefix, now: sc.now, log: sc.log}
	if c.LimitBy == "path" && sc.keepPublicPath != nil {
		*sc.keepPublicPath = true
	}
	if c.Policy == "redis" {
		port := cmp.Or(c.Redis.Port, 6379)
		password, err := resolveReferenceable(c.Redis.Password, sc.getenv)
		if err != nil {
			return nil, fmt.Errorf("redis.password: %w", err)
		}
		tlsName := ""
		if c.Redis.SSL {
			tlsName = cmp.Or(c.Redis.ServerName, c.Redis.Host)
		}
		p.store = redisCounter{sc.redis.client(net.JoinHostPort(c.Redis.Host, strconv.Itoa(port)), c.Redis.Database, c.Redis.Username, password, tlsName)}
	} else {
		p.store = newLocalCounter(sc.now)
	}
	return p, nil
}

// identifier is what r is counted by. limit_by path compares the path the
// client asked for (Kong's kong.request.get_path(), normalised), not the
// upstream's /function/<name>/… one, and counts any other path by the client
// IP, as Kong falls back to the forwarded IP.
func (p *rateLimiting) identifier(r *http.Request) string {
	ident := clientIP(r)
	switch p.cfg.LimitBy {
	case "consumer", "credential":
		if id, ok := identityOf(r); ok {
			ident = "c:" + id.consumer
			if p.cfg.LimitBy == "credential" {
				ident = "k:" + id.credential
			}
		}
	case "header":
		if v := r.Header.Get(p.cfg.HeaderName); v != "" {
			sum := sha256.Sum256([]byte(v))
			ident = "h:" + hex.EncodeToString(sum[:16])
		}
	case "service":
		ident = "service"
	case "path":
		if publicPath(r) == p.cfg.Path {
			ident = "path:" + p.cfg.Path
		}
	}
	return ident
}

func (p *rateLimiting) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ident := p.identifier(r)
		retryAfter, err := p.count(w, r, ident)
		switch {
		case err != nil && !p.cfg.FaultTolerant:
			writeProblem(w, http.StatusInternalServerError, fault.CodeInternal, "rate limiting is unavailable")
		case err != nil:
			p.log.Warn("edge: rate-limiting counter failed; request let through", "scope", p.scope, "err", err.Error())
			next.ServeHTTP(w, r)
		case retryAfter > 0:
			w.Header().Set("Retry-After", strconv.FormatInt(retryAfter, 10))
			writeProblem(w, p.cfg.ErrorCode, fault.CodeRateLimited, p.cfg.ErrorMessage)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// count counts r in every window and sets the rate-limit headers; it
// returns the seconds until the request may be retried when a limit is
// exceeded (0 when none is).
func (p *rateLimiting) count(w http.ResponseWriter, r *http.Request, ident string) (int64, error) {
	t := p.now()
	var retryAfter int64
	minRemaining, minLimit, minReset := int64(-1), int64(0), int64(0)
	for _, pd := range p.periods {
		start := t.Truncate(pd.size)
		reset := int64((start.Add(pd.size).Sub(t) + time.Second - 1) / time.Second)
		key := fmt.Sprintf("%sratelimit:%s:%s:%d:%s", p.prefix, p.scope, ident, start.Unix(), pd.name)
		n, err := p.store.incr(r.Context(), key, pd.size+time.Second)
		if err != nil {
			return 0, err
		}
		remaining := max(pd.limit-n, 0)
		if n > pd.limit {
			retryAfter = max(retryAfter, reset)
		}
		if !p.cfg.HideClientHeaders {
			w.Header().Set("X-RateLimit-Limit-"+pd.name, strconv.FormatInt(pd.limit, 10))
			w.Header().Set("X-RateLimit-Remaining-"+pd.name, strconv.FormatInt(remaining, 10))
		}
		// The RateLimit-* headers describe the window with the fewest
		// requests left, the longer one on a tie (periods go shortest
		// first), as Kong's: when both are spent, its end is Retry-After's.
		if minRemaining < 0 || remaining <= minRemaining {
			minRemaining, minLimit, minReset = remaining, pd.limit, reset
		}
	}
	if !p.cfg.HideClientHeaders {
		w.Header().Set("RateLimit-Limit", strconv.FormatInt(minLimit, 10))
		w.Header().Set("RateLimit-Remaining", strconv.FormatInt(minRemaining, 10))
		w.Header().Set("RateLimit-Reset", strconv.FormatInt(minReset, 10))
	}
	return retryAfter, nil
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
