// Package stack starts the shop for a suite under tests/: a local runtime
// (dev/faaslocal/runtimetest) running some functions and connectors against a
// fresh PostgreSQL database per service and Redis keys of the test's own,
// with the token signer of the runtime's jwt-signing-key. tests/integration and
// tests/security share it.
package stack

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// Services are the services with a database of their own; Shop.DB holds
// each one's URL under <SERVICE>_DATABASE_URL.
var Services = []string{"USERS", "CATALOG", "INVENTORY", "PAYMENTS", "ORDERS"}

// Shop is a running local runtime with databases and Redis keys of the
// test's own.
type Shop struct {
	*runtimetest.Runtime
	// DB holds each service's database URL by environment name
	// (CATALOG_DATABASE_URL, …).
	DB map[string]string
	// Suffix is random and names the test's Redis keys (test:<Suffix>:…).
	Suffix string
	// Tokens issues tokens the edge and the functions accept: it signs with
	// the runtime's jwt-signing-key, login-user's secret, as only a test may
	// besides login-user.
	Tokens *auth.Signer
}

// Options choose what Start runs.
type Options struct {
	// Functions are stack.yml functions to deploy.
	Functions []string
	// Connectors are connectors/<name> to build and supervise.
	Connectors []string
	// Env goes on top of the databases and Redis settings Start chooses.
	Env map[string]string
	// OTLPEndpoint makes every process and the edge export spans there ("" exports none).
	OTLPEndpoint string
	// GatewayOnly sends every call between functions, and every connector's
	// invocation, through the gateway, as on faasd
	// (runtimetest.Options.GatewayOnly): the gateway then counts them all
	// (Runtime.Invocations).
	GatewayOnly bool
	// StackFile and KongFile are runtimetest.Options' (default stack.yml and
	// gateway/kong.yml; the bundled faasd-CE stack is stack.ce.yml behind
	// gateway/kong.ce.yml).
	StackFile, KongFile string
}

// Start starts the runtime with a fresh database per service, random Redis
// key prefixes (CART_KEY_PREFIX, PRODUCT_CACHE_PREFIX), no Meilisearch, and
// opts.Env on top; everything stops in t.Cleanup. With -short it skips the
// test: it starts processes.
func Start(t *testing.T, opts Options) *Shop {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the local runtime; -short was asked for")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	s := &Shop{Suffix: hex.EncodeToString(b), DB: map[string]string{}}
	for _, name := range Services {
		s.DB[name+"_DATABASE_URL"] = pgtest.NewDatabase(t)
	}
	prefix := "test:" + s.Suffix + ":"
	all := map[string]string{
		"REDIS_ADDR":           "127.0.0.1:6379",
		"CART_KEY_PREFIX":      prefix + "cart:",
		"PRODUCT_CACHE_PREFIX": prefix + "product:",
		"MEILI_URL":            "",
	}
	maps.Copy(all, s.DB)
	maps.Copy(all, opts.Env)
	s.Runtime = runtimetest.Start(t, runtimetest.Options{Functions: opts.Functions, Connectors: opts.Connectors,
		Env: all, ReadyTimeout: 3 * time.Minute, OTLPEndpoint: opts.OTLPEndpoint, GatewayOnly: opts.GatewayOnly,
		StackFile: opts.StackFile, KongFile: opts.KongFile})
	tokens, err := auth.ParseSigner(s.ReadSecret(t, "jwt-signing-key"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.Tokens = tokens
	return s
}

// Token issues a token for a new user with role.
func (s *Shop) Token(t testing.TB, role string) string {
	t.Helper()
	return s.TokenFor(t, uuid.Must(uuid.NewV7()), role)
}

// TokenFor issues a token for user with role.
func (s *Shop) TokenFor(t testing.TB, user uuid.UUID, role string) string {
	t.Helper()
	tok, err := s.Tokens.Issue(user, role)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
