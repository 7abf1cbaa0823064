// Package edkey reads and makes the Ed25519 key pairs the shop signs with —
// access tokens (internal/auth) and events (internal/events) — as the PEM
// text their secrets hold: the private key one PKCS #8 "PRIVATE KEY" block
// (`openssl genpkey -algorithm ed25519`), the public keys one or more PKIX
// "PUBLIC KEY" blocks (`openssl pkey -pubout`; several while a key is being
// rotated).
package edkey

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParsePrivate reads exactly one PEM "PRIVATE KEY" block holding an Ed25519
// key. what names the key in errors ("jwt signing key"); no error holds any
// of the key's bytes.
func ParsePrivate(what, pemText string) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "PRIVATE KEY" || strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("%s: want one PEM PRIVATE KEY block (openssl genpkey -algorithm ed25519)", what)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: want an Ed25519 key, got %T", what, k)
	}
	return priv, nil
}

// ParsePublic reads one or more PEM "PUBLIC KEY" blocks, each an Ed25519
// key, and nothing else.
func ParsePublic(what, pemText string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	rest := []byte(pemText)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%s: unexpected PEM block %q, want PUBLIC KEY", what, block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%s: want an Ed25519 key, got %T", what, k)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 || strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New(what + ": want one or more PEM PUBLIC KEY blocks (openssl pkey -pubout)")
	}
	return keys, nil
}

// PublicPEM is pub as a PEM "PUBLIC KEY" block.
func PublicPEM(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an Ed25519 key always marshals
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// New returns a new random key pair as PEM blocks: the private key (PRIVATE
// KEY) and its public key (PUBLIC KEY).
func New() (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), PublicPEM(pub), nil
}
