package orderstest

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
)

// JWTKey is the HS256 key of Tokens.
const JWTKey = "orders-test-jwt-key-0123456789abcdef"

// Tokens returns the token service the tests sign and verify with.
func Tokens(tb testing.TB) *auth.Tokens {
	tb.Helper()
	t, err := auth.NewTokens(JWTKey, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// User is a test caller: an identity and its bearer token.
type User struct {
	auth.Identity
	Token string
}

// NewUser issues a token for a new user with role.
func NewUser(tb testing.TB, tokens *auth.Tokens, role string) User {
	tb.Helper()
	id := auth.Identity{UserID: uuid.Must(uuid.NewV7()), Role: role}
	tok, err := tokens.Issue(id.UserID, role)
	if err != nil {
		tb.Fatal(err)
	}
	return User{Identity: id, Token: tok}
}

// Authorize sets r's bearer token to u's (nothing for the zero User).
func (u User) Authorize(r *http.Request) *http.Request {
	if u.Token != "" {
		r.Header.Set("Authorization", "Bearer "+u.Token)
	}
	return r
}
