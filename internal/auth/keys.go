package auth

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/edkey"
)

// Algorithm is the one JWS algorithm of the shop's access tokens: EdDSA with
// Ed25519 keys (RFC 8037). Kong 3.9's jwt plugin verifies it (credential
// algorithm EdDSA, the public key in rsa_public_key), and it is the scheme of
// the signed events (internal/events). Verify refuses every other algorithm,
// HS256 signed with the public key's bytes included.
const Algorithm = "EdDSA"

// Signer issues access tokens with the private key (secret jwt-signing-key).
// Only login-user, the function that checks passwords, holds that key and
// builds one; it is safe for concurrent use.
type Signer struct {
	key ed25519.PrivateKey
	ttl time.Duration
	now func() time.Time
}

// Verifier verifies access tokens against one or more public keys (secret
// jwt-verify-key; more than one while the signing key is rotated). It holds
// no private key, so it cannot issue a token. It is safe for concurrent use.
type Verifier struct {
	keys []ed25519.PublicKey
	now  func() time.Time
	// seen are the tokens accepted so far (cache.go).
	seen *verified
}

// ParseSigner reads a PEM "PRIVATE KEY" block (PKCS #8, as written by
// `openssl genpkey -algorithm ed25519`) holding an Ed25519 key. ttl is the
// lifetime of the tokens it issues (0: 15 minutes; at most MaxLifetime).
func ParseSigner(pemText string, ttl time.Duration) (*Signer, error) {
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	if ttl > MaxLifetime {
		return nil, fmt.Errorf("token lifetime %s exceeds the cap of %s", ttl, MaxLifetime)
	}
	priv, err := edkey.ParsePrivate("jwt signing key", pemText)
	if err != nil {
		return nil, err
	}
	return &Signer{key: priv, ttl: ttl, now: time.Now}, nil
}

// ParseVerifier reads one or more PEM "PUBLIC KEY" blocks (PKIX, as written
// by `openssl pkey -pubout`) holding Ed25519 keys. A token verifies when any
// of them accepts its signature.
func ParseVerifier(pemText string) (*Verifier, error) {
	keys, err := edkey.ParsePublic("jwt verify key", pemText)
	if err != nil {
		return nil, err
	}
	return &Verifier{keys: keys, now: time.Now, seen: newVerified()}, nil
}

// WithClock returns a copy that reads time from now (tests).
func (s *Signer) WithClock(now func() time.Time) *Signer {
	c := *s
	c.now = now
	return &c
}

// TTL is how long an issued token is valid.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Issue signs a token for the user with the role.
func (s *Signer) Issue(userID uuid.UUID, role string) (string, error) {
	now := s.now()
	c := claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   userID.String(),
		Audience:  jwt.ClaimStrings{Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
		ExpiresAt: jwt.NewNumericDate(now.Add(s.ttl)),
		ID:        uuid.NewString(),
	}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return tok, nil
}

// Verifier returns a verifier of the signer's own tokens, with its clock
// (login-user's tests and the test helpers).
func (s *Signer) Verifier() *Verifier {
	return &Verifier{keys: []ed25519.PublicKey{s.key.Public().(ed25519.PublicKey)}, now: s.now, seen: newVerified()}
}

// WithClock returns a copy that reads time from now (tests).
func (v *Verifier) WithClock(now func() time.Time) *Verifier {
	c := *v
	c.now = now
	c.seen = newVerified()
	return &c
}

// key is Verify's jwt.Keyfunc: every configured public key, and nothing at
// all for a token whose header names another algorithm (WithValidMethods
// refuses it too: two locks on the algorithm-confusion door).
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Method.(*jwt.SigningMethodEd25519); !ok || t.Method.Alg() != Algorithm {
		return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(v.keys))}
	for i, k := range v.keys {
		set.Keys[i] = k
	}
	return set, nil
}

// NewKeys returns a new random key pair as PEM blocks: login-user's
// jwt-signing-key (PRIVATE KEY) and the verifiers' and Kong's jwt-verify-key
// (PUBLIC KEY), for tests and checks (the local runtime's development secrets
// come from edkey.New itself; a production deploy makes them with openssl:
// docs/deploy-faasd.md).
func NewKeys() (signing, verify string, err error) { return edkey.New() }

// NewTestKeys returns a new signer (tokens of ttl) and its PEM private and
// public keys, for tests; it panics if the system has no randomness.
func NewTestKeys(ttl time.Duration) (s *Signer, signing, verify string) {
	signing, verify, err := NewKeys()
	if err != nil {
		panic(err)
	}
	s, err = ParseSigner(signing, ttl)
	if err != nil {
		panic(err)
	}
	return s, signing, verify
}
