package events

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/shopfaas/shop/internal/edkey"
)

// SignatureHeader carries the outbox relay's signature of an event's body: an
// AMQP header on the message (the name in lower case) and an HTTP header on
// the connector's call to the consumer function.
const SignatureHeader = "Shop-Signature"

// signaturePrefix names the scheme and its version in a signature value.
const signaturePrefix = "ed25519="

// ErrUnsigned and ErrBadSignature are Verifier.Verify's answers for an event
// without a signature and one whose signature no configured key accepts.
var (
	ErrUnsigned     = errors.New("event is not signed")
	ErrBadSignature = errors.New("event signature does not verify")
)

// Signer signs event bodies with the relay's Ed25519 private key, so a
// consumer can tell an event the relay published from one posted to it by
// anyone else who can reach the function (see docs/events.md, "Signed
// events"). It is safe for concurrent use.
type Signer struct {
	key ed25519.PrivateKey
}

// ParseSigner reads a PEM "PRIVATE KEY" block (PKCS #8, as written by
// `openssl genpkey -algorithm ed25519`) holding an Ed25519 key.
func ParseSigner(pemText string) (*Signer, error) {
	priv, err := edkey.ParsePrivate("event signing key", pemText)
	if err != nil {
		return nil, err
	}
	return &Signer{key: priv}, nil
}

// Sign returns the signature value of body for SignatureHeader.
func (s *Signer) Sign(body []byte) string {
	return signaturePrefix + base64.RawURLEncoding.EncodeToString(ed25519.Sign(s.key, body))
}

// Public returns the PEM "PUBLIC KEY" block of the signer's key, the content
// of the consumers' event-verify-key secret.
func (s *Signer) Public() (string, error) {
	return edkey.PublicPEM(s.key.Public().(ed25519.PublicKey)), nil
}

// Verifier checks event signatures against one or more Ed25519 public keys
// (more than one while a key is being rotated). It is safe for concurrent use.
type Verifier struct {
	keys []ed25519.PublicKey
}

// ParseVerifier reads one or more PEM "PUBLIC KEY" blocks (PKIX, as written
// by `openssl pkey -pubout`) holding Ed25519 keys.
func ParseVerifier(pemText string) (*Verifier, error) {
	keys, err := edkey.ParsePublic("event verify key", pemText)
	if err != nil {
		return nil, err
	}
	return &Verifier{keys: keys}, nil
}

// Verify reports whether signature (a SignatureHeader value) is a signature
// of body by one of the verifier's keys: nil, ErrUnsigned or ErrBadSignature.
func (v *Verifier) Verify(body []byte, signature string) error {
	if signature == "" {
		return ErrUnsigned
	}
	raw, ok := strings.CutPrefix(signature, signaturePrefix)
	if !ok {
		return ErrBadSignature
	}
	// The decoder skips CR and LF even in strict mode: a signature with
	// line breaks inside would be another spelling of one the relay made
	// (FuzzVerify found it), so only the relay's own spelling is taken.
	if strings.ContainsAny(raw, "\r\n") {
		return ErrBadSignature
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(raw)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	for _, k := range v.keys {
		if ed25519.Verify(k, body, sig) {
			return nil
		}
	}
	return ErrBadSignature
}

// NewKeys returns a new random key pair as PEM blocks: the relay's
// event-signing-key (PRIVATE KEY) and the consumers' event-verify-key
// (PUBLIC KEY), for tests (the local runtime's development secrets come
// from edkey.New itself).
func NewKeys() (signing, verify string, err error) { return edkey.New() }

// NewTestKeys returns a new signer and a verifier of its signatures, for
// tests; it panics if the system has no randomness.
func NewTestKeys() (*Signer, *Verifier) {
	signing, verify, err := NewKeys()
	if err != nil {
		panic(err)
	}
	s, err := ParseSigner(signing)
	if err != nil {
		panic(err)
	}
	v, err := ParseVerifier(verify)
	if err != nil {
		panic(err)
	}
	return s, v
}
