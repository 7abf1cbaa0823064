package orderstest

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fntest"
)

// Tokens returns the token verifier the tests' handlers use; NewUser signs
// for it with fntest's test key pair (tokens living an hour).
func Tokens(tb testing.TB) *auth.Verifier {
	tb.Helper()
	return fntest.Tokens(tb, time.Hour)
}

// User is a test caller: an identity and its bearer token.
type User struct {
	auth.Identity
	Token string
}

// NewUser issues a token for a new user with role.
func NewUser(tb testing.TB, tokens *auth.Verifier, role string) User {
	tb.Helper()
	id := auth.Identity{UserID: uuid.Must(uuid.NewV7()), Role: role}
	return User{Identity: id, Token: fntest.Issue(tb, tokens, id.UserID, role)}
}

// Authorize sets r's bearer token to u's (nothing for the zero User).
func (u User) Authorize(r *http.Request) *http.Request {
	if u.Token != "" {
		r.Header.Set("Authorization", "Bearer "+u.Token)
	}
	return r
}
