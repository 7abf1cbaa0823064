// Package usersenv builds the dependencies of the users functions
// (register-user, login-user, get-me) from their configuration. Every
// problem is collected before failing.
//
// Configuration: the users database (postgres.ConfigFrom: USERS_…); secret
// jwt-verify-key for Needs.Tokens; secret jwt-signing-key and
// ACCESS_TOKEN_TTL (default 15m, at least MinTokenTTL, at most
// auth.MaxLifetime) for Needs.Issue
// (login-user only: the one function that checks passwords is the one that
// can sign); REDIS_ADDR and the optional secret redis-password
// (redisconn.ConfigFrom), LOGIN_RATE_LIMIT (default 10) and
// LOGIN_RATE_WINDOW (default 15m, at least MinLoginWindow) for
// Needs.LoginLimit.
package usersenv

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/ratelimit"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

// The shortest settings Load accepts; shorter ones are configuration errors,
// never replaced by a default: ratelimit's windows are keyed by the start
// second, so a window under a second would count every request apart (no
// limit), and a token that lives under a minute expires before its client
// can use it (expires_in counts whole seconds: 500ms answered 0).
const (
	MinLoginWindow = time.Second // LOGIN_RATE_WINDOW
	MinTokenTTL    = time.Minute // ACCESS_TOKEN_TTL
)

// Needs says which optional dependencies a function uses.
type Needs struct {
	Tokens bool // verifies access tokens: the jwt-verify-key secret
	Issue  bool // issues them: the jwt-signing-key secret, ACCESS_TOKEN_TTL
	// LoginLimit limits logins per account (login-user): REDIS_ADDR, the
	// optional secret redis-password, LOGIN_RATE_LIMIT, LOGIN_RATE_WINDOW.
	LoginLimit bool
}

// Deps are a users function's dependencies. Fields a function does not need
// are nil.
type Deps struct {
	Store  *usersdb.Store
	Tokens *auth.Verifier // Needs.Tokens
	Signer *auth.Signer   // Needs.Issue
	// LoginLimit counts the logins of each account (Needs.LoginLimit).
	LoginLimit *ratelimit.Limiter
}

// Load reads the configuration from c (every problem reported at once), then
// connects to and migrates the users database within postgres.OpenTimeout
// and, for Needs.LoginLimit, checks the Redis login (ratelimit.Open: a
// refused login or a certificate that fails verification is an error, an
// unreachable Redis is not: the limit fails open). A failed Load closes what it opened (a failed build is retried every
// few seconds: each retry would leave a pool and a Redis connection open).
func Load(ctx context.Context, c *config.Reader, log *slog.Logger, needs Needs) (_ *Deps, err error) {
	dbc := postgres.ConfigFrom(c, "users", usersdb.Migrations())
	dbc.Log = log // a migration retry's warning names this function (on faasd CE, the member)
	var ttl time.Duration
	var signingKey string
	callers := auth.CallersFrom(c, needs.Tokens, false)
	if needs.Issue {
		signingKey = auth.SignerKey(c)
		ttl = c.Duration("ACCESS_TOKEN_TTL", 15*time.Minute)
		if ttl < MinTokenTTL {
			c.Fail("ACCESS_TOKEN_TTL", fmt.Errorf("%s is shorter than the minimum of %s (a token would expire as it is issued)", ttl, MinTokenTTL))
		}
		if ttl > auth.MaxLifetime {
			c.Fail("ACCESS_TOKEN_TTL", fmt.Errorf("%s is longer than the cap of %s (auth.MaxLifetime: every verifier and the edge refuse such tokens)", ttl, auth.MaxLifetime))
		}
	}
	var limit ratelimit.Config
	var rc redisconn.Config
	if needs.LoginLimit {
		rc = redisconn.ConfigFrom(c)
		limit = ratelimit.Config{Prefix: "shop:ratelimit:login-user:",
			Limit:  int64(c.Int("LOGIN_RATE_LIMIT", 10, 1, 1_000_000)),
			Window: c.Duration("LOGIN_RATE_WINDOW", 15*time.Minute)}
		if limit.Window < MinLoginWindow {
			c.Fail("LOGIN_RATE_WINDOW", fmt.Errorf("%s is shorter than the minimum of %s (the windows are keyed by the second: a shorter one would not limit)", limit.Window, MinLoginWindow))
		}
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	t, err := callers.Verifier()
	if err != nil {
		return nil, err
	}
	d := &Deps{Tokens: t}
	if needs.Issue {
		if d.Signer, err = auth.ParseSigner(signingKey, ttl); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, postgres.OpenTimeout)
	defer cancel()
	pool, err := postgres.Open(ctx, dbc)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	d.Store = usersdb.New(pool)
	if !needs.LoginLimit {
		return d, nil
	}
	// Counted per account table: the database's name is in the key, so two
	// deployments (or test runs) sharing a Redis count apart.
	limit.Prefix += pool.Config().ConnConfig.Database + ":"
	// A limiter's own client (ratelimit.Options: no retries).
	rdb, err := ratelimit.Open(ctx, rc)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = rdb.Close()
		}
	}()
	if d.LoginLimit, err = ratelimit.New(rdb, limit, log); err != nil {
		return nil, err
	}
	return d, nil
}
