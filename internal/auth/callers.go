package auth

import "github.com/shopfaas/shop/internal/config"

// Callers is what a function reads from its configuration to check its
// callers: the public key(s) of the token signer (the jwt-verify-key secret)
// when it verifies access tokens, and the internal-callers verifier when
// other functions, the connectors or operators call it. Every service's
// loader reads it the same way. It never reads the signing key: see
// SignerKey.
type Callers struct {
	verifyKey string
	tokens    bool
	internal  bool
	callers   string
}

// CallersFrom reads the secrets asked for from c; a missing one is recorded
// in c, like every other configuration problem.
func CallersFrom(c *config.Reader, tokens, internal bool) Callers {
	cs := Callers{tokens: tokens, internal: internal}
	if tokens {
		cs.verifyKey = c.Secret("jwt-verify-key", "", false)
	}
	if internal {
		cs.callers = c.Secret(CallersSecret, "", false)
	}
	return cs
}

// CredentialFrom reads caller's own internal credential (the secret
// internal-token-<caller>), which a function sends in InternalHeader when it
// calls an internal function; a missing one is recorded in c.
func CredentialFrom(c *config.Reader, caller string) string {
	return c.Secret(CredentialSecret(caller), "", false)
}

// InternalVerifier parses the internal-callers secret, or returns nil when
// the internal check was not asked for.
func (cs Callers) InternalVerifier() (*InternalVerifier, error) {
	if !cs.internal {
		return nil, nil
	}
	return ParseInternalVerifier(cs.callers)
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
