package auth

import "github.com/shopfaas/shop/internal/config"

// Callers is what a function reads from its configuration to check its
// callers: the public key(s) of the token signer (the jwt-verify-key secret)
// when it verifies access tokens, and the internal credential (the
// internal-token secret) when other functions or the connectors call it.
// Every service's loader reads it the same way. It never reads the signing
// key: see SignerFrom.
type Callers struct {
	verifyKey string
	tokens    bool
	// Internal is the internal credential, empty unless asked for.
	Internal string
}

// CallersFrom reads the secrets asked for from c; a missing one is recorded
// in c, like every other configuration problem.
func CallersFrom(c *config.Reader, tokens, internal bool) Callers {
	cs := Callers{tokens: tokens}
	if tokens {
		cs.verifyKey = c.Secret("jwt-verify-key", "", false)
	}
	if internal {
		cs.Internal = c.Secret("internal-token", "", false)
	}
	return cs
}

// Verifier builds the token verifier, or returns nil when tokens were not
// asked for.
func (cs Callers) Verifier() (*Verifier, error) {
	if !cs.tokens {
		return nil, nil
	}
	return ParseVerifier(cs.verifyKey)
}

// SignerKey reads the private key of the token signer (the jwt-signing-key
// secret) from c; a missing one is recorded in c. Only a function that
// issues tokens calls it, and only such a function declares that secret in
// stack.yml (cmd/shop-functions tests that no other one does).
func SignerKey(c *config.Reader) string { return c.Secret("jwt-signing-key", "", false) }
