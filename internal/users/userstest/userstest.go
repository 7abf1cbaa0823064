// Package userstest holds the helpers the users functions' tests share: a
// store on a fresh real database and a registered user. Requests and the
// checks of answers are internal/fntest's.
package userstest

import (
	"context"
	"testing"

	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

// JWTKey is a 32-byte signing key for test tokens.
const JWTKey = "test-jwt-key-0123456789abcdefghij"

// Store returns a store on a freshly migrated database of its own, dropped
// when the test ends. It fails the test when PostgreSQL is unreachable.
func Store(tb testing.TB) *usersdb.Store {
	tb.Helper()
	return usersdb.New(pgtest.Open(tb, usersdb.Migrations()))
}

// Register creates a customer directly in the store.
func Register(tb testing.TB, s *usersdb.Store, email, password, name string) users.User {
	tb.Helper()
	reg, err := users.NewRegistration(email, password, name)
	if err != nil {
		tb.Fatal(err)
	}
	u, err := s.Register(context.Background(), reg)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}
