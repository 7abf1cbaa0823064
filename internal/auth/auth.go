// Package auth issues and verifies the access tokens of the shop and hashes
// passwords. A function learns who is calling ONLY from a token verified here,
// never from a body, a path or an unverified header.
//
// Tokens are signed with EdDSA (Ed25519, RFC 8037), the one algorithm
// accepted. Only the function that checks passwords (login-user) holds the
// private key (secret jwt-signing-key) and can build a Signer; every other
// function and the edge hold the public key (secret jwt-verify-key) and build
// a Verifier, which has no way to sign (see docs/security.md, "Who can mint a
// token").
package auth

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
)

// Roles a token can carry.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Issuer is the token's iss claim. Kong's jwt plugin matches it to the consumer
// whose credential key is the same string, so it must equal gateway/kong.yml.
const Issuer = "shop-users"

// Audience is the token's aud claim.
const Audience = "shop-api"

// MaxLifetime caps a token's lifetime (exp − iat): a token signed with the
// key but meant to live longer is refused, and ParseSigner refuses to issue
// such tokens. gateway/kong.yml's jwt plugins carry the same cap
// (maximum_expiration, seconds).
const MaxLifetime = 24 * time.Hour

// Identity is the verified caller.
type Identity struct {
	UserID uuid.UUID
	Role   string
}

// IsAdmin reports whether the caller has the admin role.
func (id Identity) IsAdmin() bool { return id.Role == RoleAdmin }

type claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// errToken is what every bad token becomes: the reason is never told to the client.
var errToken = fault.E(fault.Unauthenticated, fault.CodeUnauthenticated, "missing, invalid or expired access token")

// Verify checks signature (EdDSA only, by any of the verifier's keys), algorithm, issuer, audience and lifetime (exp and
// iat required, exp − iat at most MaxLifetime), and returns the identity.
// Every failure is fault.Unauthenticated. A token accepted before is
// answered from the verifier's cache until it expires (cache.go).
func (v *Verifier) Verify(token string) (Identity, error) {
	key := sha256.Sum256([]byte(token))
	if id, ok := v.seen.get(key, v.now()); ok {
		return id, nil
	}
	id, exp, err := v.verify(token)
	if err != nil {
		return Identity{}, err
	}
	v.seen.put(key, id, exp.Add(leeway))
	return id, nil
}

// leeway is the clock skew Verify allows on exp, nbf and iat.
const leeway = 5 * time.Second

// verify is Verify without the cache: it also returns the token's exp.
// Strict base64url decoding refuses a segment whose last character has spare
// bits set: without it the 4 spare bits of an Ed25519 signature's last
// character give one token 16 spellings that all verify, and a limit keyed on
// the Authorization header 16 budgets.
func (v *Verifier) verify(token string) (Identity, time.Time, error) {
	var c claims
	parsed, err := jwt.ParseWithClaims(token, &c, v.key,
		jwt.WithValidMethods([]string{Algorithm}),
		jwt.WithIssuer(Issuer), jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.now), jwt.WithLeeway(leeway), jwt.WithStrictDecoding())
	if err != nil || !parsed.Valid {
		return Identity{}, time.Time{}, fault.Wrap(err, fault.Unauthenticated, errToken.Code, errToken.Message)
	}
	if c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxLifetime {
		return Identity{}, time.Time{}, fault.Wrap(errors.New("token lifetime missing or above the cap"), fault.Unauthenticated, errToken.Code, errToken.Message)
	}
	id, err := uuid.Parse(c.Subject)
	if err != nil {
		return Identity{}, time.Time{}, fault.Wrap(err, fault.Unauthenticated, errToken.Code, errToken.Message)
	}
	if c.Role != RoleCustomer && c.Role != RoleAdmin {
		return Identity{}, time.Time{}, fault.Wrap(errors.New("unknown role"), fault.Unauthenticated, errToken.Code, errToken.Message)
	}
	return Identity{UserID: id, Role: c.Role}, c.ExpiresAt.Time, nil
}

// BearerPrefix is the one spelling of the Authorization scheme read: the
// header is exactly "Bearer ", one space, and the token, as login-user hands
// it out (token_type "Bearer").
const BearerPrefix = "Bearer "

// FromRequest verifies the request's bearer token. Only the header
// BearerPrefix + token is read: any other spelling of the same token
// ("bearer x", "BEARER x", "Bearer  x", a tab, spaces around it) is
// fault.Unauthenticated before any verification, because the edge's per-token
// rate limits count on the header's exact value and each spelling would be a
// budget of its own (docs/edge.md, "Rate limits").
func (v *Verifier) FromRequest(r *http.Request) (Identity, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), BearerPrefix)
	if !ok || token == "" || strings.ContainsFunc(token, unicode.IsSpace) {
		return Identity{}, errToken
	}
	return v.Verify(token)
}

// RequireAdmin verifies the token and refuses non-admins with fault.Forbidden.
func (v *Verifier) RequireAdmin(r *http.Request) (Identity, error) {
	id, err := v.FromRequest(r)
	if err != nil {
		return id, err
	}
	if !id.IsAdmin() {
		return id, fault.E(fault.Forbidden, fault.CodeForbidden, "admin role required")
	}
	return id, nil
}
