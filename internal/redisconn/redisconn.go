// Package redisconn is how every process of the shop reaches Redis: the
// address (REDIS_ADDR) and the optional password (the redis-password secret
// file, never an environment value), read in one place by ConfigFrom and
// turned into go-redis options in one place by Options, so the carts, the
// rate limits and the product cache all authenticate the same way. TLS, for
// a managed Redis that requires it, is REDIS_TLS with the optional redis-ca
// secret (tls.go), read and applied in the same two places.
//
// A Redis that refuses the shop (AuthFailed: NOAUTH or WRONGPASS, a wrong or
// missing secret; NOPERM, an ACL that denies the user a command or key), or
// whose TLS certificate fails verification (TLSFailed: the redis-ca secret,
// or REDIS_ADDR's host), is a configuration error (Misconfigured), which
// does not pass by itself; a Redis that cannot be reached is an outage,
// which does. The rate limits fail closed on the first and open on the
// second; the product cache misses on both.
//
// Every Redis client of a function is built here, one of two ways, by what
// Redis is to it. A function that needs Redis (the carts, the checkout
// limit, the login limit: Open) checks its login as it builds, and a refusal
// or a certificate that fails verification fails the build, so /_/ready
// answers 503 until Redis takes the login over a verified connection. A
// function whose only use of Redis is an optimisation (the product cache of
// the catalog functions: Client) does not check: either shows on each call,
// which the cache counts (reason auth) and logs at error level (catalogenv)
// and takes as a miss, and never fails the build, so the catalog stays ready
// and serves from PostgreSQL.
package redisconn

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/telemetry"
)

// PasswordSecret is the secret file whose content, when present and not
// blank, is Redis's password: the password of Redis's default user, which
// on faasd only the functions log in as (Kong, the redis-exporter and
// operators have ACL users and secrets of their own; docker-compose.yml).
// It is read from the secrets directory only, so the password is in no
// process's environment or command line; docker-compose.yml's redis service
// reads the same file (docs/deploy-faasd.md).
const PasswordSecret = "redis-password"

// Config is where Redis is and how to log in to it. Printed (fmt's %v, %+v,
// %#v) or logged (slog), it shows whether a password is set, never the
// password.
type Config struct {
	// Addr is Redis's host:port (REDIS_ADDR). Required.
	Addr string
	// Password is the redis-password secret, "" when the secret is absent
	// or blank: then no AUTH is sent (a Redis without requirepass, as on a
	// developer machine).
	Password string
	// TLS dials Redis over TLS, verifying its certificate for the host of
	// Addr (REDIS_TLS=true; tls.go). false: plain TCP.
	TLS bool
	// CA is the PEM bundle of the redis-ca secret that Redis's certificate
	// must chain to; nil: the system's roots. Only read with TLS.
	CA []byte
}

// ConfigFrom reads REDIS_ADDR (required) and the optional redis-password
// secret from c; c collects the problems: REDIS_ADDR unset, or a secret
// file that exists and cannot be read (taken as absent, every command would
// fail with NOAUTH instead of the problem naming the file). A function
// builds its dependencies lazily, so such a problem fails its build (each
// request 503, /_/ready 503) while the process keeps running.
//
// REDIS_TLS and the redis-ca secret turn TLS on (tlsFrom, tls.go).
func ConfigFrom(c *config.Reader) Config {
	cfg := Config{Addr: c.Required("REDIS_ADDR"), Password: c.OptionalSecret(PasswordSecret)}
	tlsFrom(c, &cfg)
	return cfg
}

// Options returns go-redis options that reach and log in to cfg's Redis;
// the caller sets its pool size and timeouts on them.
// With cfg.TLS they dial TLS and verify Redis's certificate (tlsConfig).
//
// They send nothing on connecting but the login (HELLO with AUTH): go-redis
// would also send CLIENT SETINFO LIB-NAME and LIB-VER (DisableIdentity) and
// CLIENT MAINT_NOTIFICATIONS ON (MaintNotificationsConfig), which the
// functions' ACL user may not run: Redis >= 7.2 answers SETINFO with NOPERM
// (go-redis ignores it) and records each refusal in ACL LOG, where an
// operator looks for the refusals that matter (docs/runbooks/datastores.md).
// Leaving them out also saves their round trips on every new connection.
func Options(cfg Config) *redis.Options {
	opts := &redis.Options{Addr: cfg.Addr, Password: cfg.Password, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}}
	if cfg.TLS {
		opts.TLSConfig = tlsConfig(cfg)
	}
	return opts
}

// LoginTimeout bounds the PING with which Open checks the login: a Redis
// that has not answered by then is taken as unreachable.
const LoginTimeout = time.Second

// Client returns a client with opts (from Options, with the caller's pool
// size and timeouts) that traces every command (telemetry.RedisHook),
// without checking its login: for a function whose only use of Redis is an
// optimisation (the product cache), so that a refused login fails its calls
// (each a miss, counted and logged by the caller) and never its build. A
// function that needs Redis opens its client with Open.
func Client(opts *redis.Options) *redis.Client {
	rdb := redis.NewClient(opts)
	rdb.AddHook(telemetry.RedisHook())
	return rdb
}

// Open returns a client with opts as Client does, once it has checked the
// login with one PING within LoginTimeout: for a function that needs Redis
// (the carts, the rate limits). A PING that meets a misconfiguration
// (Misconfigured) is an error naming it (Refused), never the password: Redis
// refusing it (AuthFailed: a wrong or missing redis-password secret, or an
// ACL that denies the user PING), or Redis's certificate failing
// verification in its handshake (TLSFailed: a wrong redis-ca secret, a
// REDIS_ADDR host the certificate is not for). A function builds its
// dependencies lazily, so its build fails, /_/ready answers 503 and the next
// request or probe tries the build again: such a function is kept out of
// rotation rather than ready with every call failing. A Redis that cannot be
// reached, or answers anything else, is no error: the client is returned
// and each call meets the outage as it comes (the rate limits let requests
// through, the carts answer 503), so an outage does not take out of rotation
// the functions that only limit with Redis.
func Open(ctx context.Context, opts *redis.Options) (*redis.Client, error) {
	rdb := Client(opts)
	ctx, cancel := context.WithTimeout(ctx, LoginTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); Misconfigured(err) {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis %s: %s: %w", opts.Addr, Refused(err), err)
	}
	return rdb, nil
}

// String describes cfg without its password, saying whether TLS is on.
func (cfg Config) String() string {
	s := "redis " + cfg.Addr + " (password set"
	if cfg.Password == "" {
		s = "redis " + cfg.Addr + " (no password"
	}
	switch {
	case cfg.TLS && cfg.CA != nil:
		return s + ", TLS with the redis-ca secret)"
	case cfg.TLS:
		return s + ", TLS with the system's roots)"
	}
	return s + ", no TLS)"
}

// GoString is String, so %#v does not print the password either.
func (cfg Config) GoString() string { return cfg.String() }

// LogValue logs cfg's address, whether a password is set, whether TLS is
// on and whether the redis-ca secret gives its authorities.
func (cfg Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", cfg.Addr), slog.Bool("password", cfg.Password != ""),
		slog.Bool("tls", cfg.TLS), slog.Bool("tls_ca", cfg.TLS && cfg.CA != nil))
}

// AuthFailed reports whether err is Redis refusing the shop: refusing its
// login, NOAUTH (no password sent to a Redis that requires one) or WRONGPASS
// (a wrong one), that is, the redis-password secret does not match Redis's
// password; or refusing it a command or key, NOPERM (an ACL that denies the
// user the secret logs in as the right to run it). Unlike a Redis that
// cannot be reached, this does not pass by itself: it is a configuration
// error. Redis's message does not contain the password.
func AuthFailed(err error) bool { return redis.IsAuthError(err) || redis.IsPermissionError(err) }

// Misconfigured reports whether err is Redis refusing the shop (AuthFailed)
// or its certificate failing verification (TLSFailed): a configuration
// error that does not pass by itself, unlike a Redis that cannot be reached,
// so a caller that rides out an outage (the rate limits fail open, the
// product cache logs a warning) must not ride this out: Open fails the build
// on it, the rate limits refuse the request (503), the product cache logs it
// at error level. Refused words it.
func Misconfigured(err error) bool { return AuthFailed(err) || TLSFailed(err) }

// Refused says, for an operator's log line or error, what refusal err (one
// Misconfigured reports) is, naming the secret and never the password.
func Refused(err error) string {
	if TLSFailed(err) {
		return "Redis's certificate failed verification (the redis-ca secret, or REDIS_ADDR's host)"
	}
	if redis.IsPermissionError(err) {
		return "Redis refused the command (NOPERM: its ACL denies it to the user the redis-password secret logs in as)"
	}
	return "Redis refused the login (the redis-password secret is wrong or missing)"
}
