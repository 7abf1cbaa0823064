// Package auth issues and verifies the access tokens of the shop and hashes
// passwords. A function learns who is calling ONLY from a token verified here,
// never from a body, a path or an unverified header.
package auth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

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

// MinKeyBytes is the shortest HMAC key accepted (256 bits).
const MinKeyBytes = 32

// MaxLifetime caps a token's lifetime (exp − iat): a token signed with the
// key but meant to live longer is refused, and NewTokens refuses to issue
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

// Tokens issues and verifies HS256 access tokens.
type Tokens struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewTokens returns a token service keyed by key (the jwt-secret secret).
func NewTokens(key string, ttl time.Duration) (*Tokens, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("jwt key must be at least %d bytes", MinKeyBytes)
	}
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	if ttl > MaxLifetime {
		return nil, fmt.Errorf("token lifetime %s exceeds the cap of %s", ttl, MaxLifetime)
	}
	return &Tokens{key: []byte(key), ttl: ttl, now: time.Now}, nil
}

// WithClock returns a copy that reads time from now (tests).
func (t *Tokens) WithClock(now func() time.Time) *Tokens {
	c := *t
	c.now = now
	return &c
}

// TTL is how long an issued token is valid.
func (t *Tokens) TTL() time.Duration { return t.ttl }

type claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// Issue signs a token for the user with the role.
func (t *Tokens) Issue(userID uuid.UUID, role string) (string, error) {
	now := t.now()
	c := claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   userID.String(),
		Audience:  jwt.ClaimStrings{Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
		ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
		ID:        uuid.NewString(),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// errToken is what every bad token becomes: the reason is never told to the client.
var errToken = fault.E(fault.Unauthenticated, fault.CodeUnauthenticated, "missing, invalid or expired access token")

// Verify checks signature, algorithm, issuer, audience and lifetime (exp and
// iat required, exp − iat at most MaxLifetime), and returns the identity.
// Every failure is fault.Unauthenticated.
func (t *Tokens) Verify(token string) (Identity, error) {
	var c claims
	parsed, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(Issuer), jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now), jwt.WithLeeway(5*time.Second))
	if err != nil || !parsed.Valid {
		return Identity{}, fault.Wrap(err, fault.Unauthenticated, errToken.Code, errToken.Message)
	}
	if c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxLifetime {
		return Identity{}, fault.Wrap(errors.New("token lifetime missing or above the cap"), fault.Unauthenticated, errToken.Code, errToken.Message)
	}
	id, err := uuid.Parse(c.Subject)
	if err != nil {
		return Identity{}, fault.Wrap(err, fault.Unauthenticated, errToken.Code, errToken.Message)
	}
	if c.Role != RoleCustomer && c.Role != RoleAdmin {
		return Identity{}, fault.Wrap(errors.New("unknown role"), fault.Unauthenticated, errToken.Code, errToken.Message)
	}
	return Identity{UserID: id, Role: c.Role}, nil
}

// FromRequest verifies the request's bearer token.
func (t *Tokens) FromRequest(r *http.Request) (Identity, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Identity{}, errToken
	}
	return t.Verify(strings.TrimSpace(token))
}

// RequireAdmin verifies the token and refuses non-admins with fault.Forbidden.
func (t *Tokens) RequireAdmin(r *http.Request) (Identity, error) {
	id, err := t.FromRequest(r)
	if err != nil {
		return id, err
	}
	if !id.IsAdmin() {
		return id, fault.E(fault.Forbidden, fault.CodeForbidden, "admin role required")
	}
	return id, nil
}

// InternalHeader carries the internal service credential between functions.
const InternalHeader = "X-Internal-Token"

// CheckInternal verifies that r carries the internal service credential, in
// constant time. Internal functions call it first.
func CheckInternal(r *http.Request, credential string) error {
	got := r.Header.Get(InternalHeader)
	if credential == "" || subtle.ConstantTimeCompare([]byte(got), []byte(credential)) != 1 {
		return fault.E(fault.Unauthenticated, fault.CodeUnauthenticated, "internal credential required")
	}
	return nil
}
