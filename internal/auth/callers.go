package auth

import (
	"time"

	"github.com/shopfaas/shop/internal/config"
)

// Callers is what a function reads from its configuration to check its
// callers: the jwt-secret key when it verifies access tokens, and the
// internal credential (the internal-token secret) when other functions or the
// connectors call it. Every service's loader reads it the same way.
type Callers struct {
	key    string
	tokens bool
	// Internal is the internal credential, empty unless asked for.
	Internal string
}

// CallersFrom reads the secrets asked for from c; a missing one is recorded
// in c, like every other configuration problem.
func CallersFrom(c *config.Reader, tokens, internal bool) Callers {
	cs := Callers{tokens: tokens}
	if tokens {
		cs.key = c.Secret("jwt-secret", "", false)
	}
	if internal {
		cs.Internal = c.Secret("internal-token", "", false)
	}
	return cs
}

// Tokens builds the token service with the default lifetime, or returns nil
// when tokens were not asked for.
func (cs Callers) Tokens() (*Tokens, error) { return cs.TokensWithTTL(0) }

// TokensWithTTL is Tokens with the lifetime of the tokens the function
// issues (0: the default).
func (cs Callers) TokensWithTTL(ttl time.Duration) (*Tokens, error) {
	if !cs.tokens {
		return nil, nil
	}
	return NewTokens(cs.key, ttl)
}
