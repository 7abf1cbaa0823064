// Package configtest runs the table tests of the *env loaders (cartenv,
// catalogenv, …): each case loads once with no configuration at all, and
// the error must name every missing setting at once, then once with its
// configuration, and the dependencies must be built.
package configtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/auth/authtest"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
)

// CallerSecrets are valid values of the secrets that check callers: a
// jwt-verify-key (the PEM public key of a fresh Ed25519 pair), the verifier
// internal-callers of authtest's credentials, and the own credential of
// each function that calls internal functions (internal-token-<function>).
var CallerSecrets = callerSecrets()

func callerSecrets() map[string]string {
	m := map[string]string{"jwt-verify-key": jwtVerifyKey, auth.CallersSecret: authtest.VerifierText()}
	for _, c := range []string{"create-order", "cancel-order", "recover-orders", "expire-reservations"} {
		m[auth.CredentialSecret(c)] = authtest.Credential(c)
	}
	return m
}

// JWTSigningKey is a valid jwt-signing-key, the private half of
// CallerSecrets' jwt-verify-key (the loaders that issue tokens read it).
var JWTSigningKey, jwtVerifyKey = jwtKeys()

func jwtKeys() (signing, verify string) {
	signing, verify, err := auth.NewKeys()
	if err != nil {
		panic(err)
	}
	return signing, verify
}

// A Case is one Needs of a loader.
type Case[D any] struct {
	// Name names the case (its Needs).
	Name string
	// Load calls the loader with c and the case's Needs.
	Load func(c *config.Reader) (D, error)
	// Missing are the settings the error names when Load runs with no
	// variable and an empty secrets directory (none: that run is skipped).
	Missing []string
	// Env and Secrets (written one file each, with a trailing newline) are
	// the configuration with which Load succeeds.
	Env     map[string]string
	Secrets map[string]string
	// Check makes the case's assertions on the dependencies built.
	Check func(t *testing.T, d D)
}

// Run runs every case as a subtest.
func Run[D any](t *testing.T, cases ...Case[D]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			if len(tc.Missing) > 0 {
				_, err := tc.Load(Reader(t, nil, nil))
				if err == nil {
					t.Error("Load succeeded without configuration")
				}
				for _, want := range tc.Missing {
					if err != nil && !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %s", err, want)
					}
				}
			}
			d, err := tc.Load(Reader(t, tc.Env, tc.Secrets))
			if err != nil {
				t.Fatal(err)
			}
			if tc.Check != nil {
				tc.Check(t, d)
			}
		})
	}
}

// Reader reads env (may be nil) and a fresh secrets directory holding
// secrets.
func Reader(t testing.TB, env, secrets map[string]string) *config.Reader {
	t.Helper()
	dir := t.TempDir()
	for name, v := range secrets {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := map[string]string{config.SecretsDirEnv: dir}
	for k, v := range env {
		m[k] = v
	}
	return config.New(config.Env(m))
}

// VerifyKey is the PEM public key of a fresh event-signing key: a valid
// event-verify-key secret.
func VerifyKey(t testing.TB) string {
	t.Helper()
	_, verify, err := events.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return verify
}
