// Package function is the login-user function: POST /api/v1/auth/login trades
// an email and password for a short-lived access token.
package function

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := usersenv.Load(context.Background(), c, log, usersenv.Needs{Issue: true, LoginLimit: true})
	if err != nil {
		return nil, err
	}
	// The dummy hash an unknown email is checked against, computed now rather
	// than by the first login that names an unknown email, which would take
	// two hashes' time where a wrong password takes one.
	auth.DummyHash()
	return New(d.Store, d.Signer, d.LoginLimit, log), nil
}

// Authenticator checks credentials; usersdb.Store is the real one. It must
// answer an unknown email exactly like a wrong password.
type Authenticator interface {
	Authenticate(ctx context.Context, login users.Login) (users.User, error)
}

// Limiter counts one login of an account; ratelimit.Limiter is the real one.
// Past its limit Count answers 429 rate_limited with a Retry-After; counted
// says whether it counted the login (not when Redis could not be reached and
// it let the login through). Refund gives back a count whose login checked
// no password, even after ctx ended; only a login counted is refunded.
type Limiter interface {
	Count(ctx context.Context, key string) (counted bool, err error)
	Refund(ctx context.Context, key string)
}

// AccountKey is the rate limit's key of an email: a digest, so that no
// client text reaches a Redis key, of the form Authenticate looks up.
func AccountKey(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:16])
}

// request is the body of a login. The password is opaque to the text rule
// (fnhttp.TextTag): registration accepted control characters in passwords
// from 2026-11-25 until the rule refused them on 2026-11-30, and such an
// account must still log in; a 422 naming the character would also tell
// something about a password. Registration still refuses them in a new
// password (its request keeps the rule).
type request struct {
	Email    string `json:"email"`
	Password string `json:"password" text:"opaque"`
}

// Token is the body of a successful login (RFC 6749 section 5.1 names).
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// New serves POST /api/v1/auth/login: 200 and a bearer token for valid
// credentials, 401 invalid_credentials for an unknown email or a wrong
// password alike, 422 for missing fields, 400 for malformed bodies, 429 past
// limit's count of logins of one account (before any password work): the
// edge limits logins per client IP, which an attacker guessing one
// account's password from many addresses does not meet. Only logins whose
// password was judged stay counted (a success or invalid_credentials): one
// that Authenticate failed without judging it (503 unavailable, 504
// timeout, 500) is refunded, so a client retrying after a 503 does not lock
// itself out.
func New(store Authenticator, tokens *auth.Signer, limit Limiter, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/auth/login", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", "no-store")
		var req request
		if err := fnhttp.Decode(r, &req, fnhttp.MaxBody); err != nil {
			return err
		}
		login, err := users.NewLogin(req.Email, req.Password)
		if err != nil {
			return err
		}
		key := AccountKey(login.Email)
		counted, err := limit.Count(r.Context(), key)
		if err != nil {
			return err
		}
		u, err := store.Authenticate(r.Context(), login)
		if err != nil {
			switch fault.KindOf(err) {
			case fault.Unavailable, fault.Timeout, fault.Internal:
				if counted { // a login let through uncounted has nothing to give back
					limit.Refund(r.Context(), key)
				}
			}
			return err
		}
		token, err := tokens.Issue(u.ID, u.Role)
		if err != nil {
			return fault.Internalf("issue token: %w", err)
		}
		return fnhttp.JSON(w, http.StatusOK, Token{AccessToken: token, TokenType: "Bearer", ExpiresIn: int64(tokens.TTL() / time.Second)})
	}))
	return fnhttp.Routes(mux)
}
