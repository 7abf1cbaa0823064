package events

import (
	"errors"
	"strings"
	"testing"
)

// An Ed25519 key pair written by `openssl genpkey -algorithm ed25519` and
// `openssl pkey -pubout`, the commands docs/events.md gives for production.
const (
	opensslPrivate = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDtd3CMs0AzJSm7/BoNTAWEcpISAG9ngl+8h3wMuq2A1
-----END PRIVATE KEY-----
`
	opensslPublic = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEANwxzq8fzFRfMQhAqZelmknP/DHbmwM0+RPsZItGt+J8=
-----END PUBLIC KEY-----
`
)

func TestSignatureVerifiesOnlyTheSignedBodyWithTheRightKey(t *testing.T) {
	signer, err := ParseSigner(opensslPrivate)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signer.Public()
	if err != nil || pub != opensslPublic {
		t.Fatalf("Public() = %q, %v; want openssl's public key", pub, err)
	}
	verifier, err := ParseVerifier(opensslPublic)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewTestKeys()

	body := []byte(`{"specversion":"1.0","id":"0190","type":"order.placed.v1","source":"orders","data":{"quantity":1}}`)
	sig := signer.Sign(body)
	if err := verifier.Verify(body, sig); err != nil {
		t.Fatalf("the relay's own signature: %v", err)
	}
	forged := []byte(strings.Replace(string(body), `"quantity":1`, `"quantity":1000000`, 1))
	for name, c := range map[string]struct {
		body []byte
		sig  string
		want error
	}{
		"unsigned":            {body, "", ErrUnsigned},
		"changed body":        {forged, sig, ErrBadSignature},
		"another key":         {body, other.Sign(body), ErrBadSignature},
		"another key, forged": {forged, other.Sign(forged), ErrBadSignature},
		"unknown scheme":      {body, strings.Replace(sig, "ed25519=", "hmac=", 1), ErrBadSignature},
		"not base64":          {body, "ed25519=***", ErrBadSignature},
		"truncated":           {body, sig[:len(sig)-4], ErrBadSignature},
	} {
		if err := verifier.Verify(c.body, c.sig); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, c.want)
		}
	}

	// During a rotation the consumers trust both keys.
	otherPub, _ := other.Public()
	both, err := ParseVerifier(opensslPublic + otherPub)
	if err != nil {
		t.Fatal(err)
	}
	if both.Verify(body, sig) != nil || both.Verify(forged, other.Sign(forged)) != nil {
		t.Error("a verifier with two keys must accept signatures of either")
	}
}

func TestParseKeysRefusesWhatIsNotAnEd25519PEMKey(t *testing.T) {
	for _, bad := range []string{"", "secret", opensslPublic, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := ParseSigner(bad); err == nil {
			t.Errorf("ParseSigner(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "secret", opensslPrivate, opensslPublic + "trailing"} {
		if _, err := ParseVerifier(bad); err == nil {
			t.Errorf("ParseVerifier(%q) accepted", bad)
		}
	}
}

// FuzzVerify: whatever a caller sends as body and signature, Verify never
// panics and accepts only what the relay signed.
func FuzzVerify(f *testing.F) {
	signer, err := ParseSigner(opensslPrivate)
	if err != nil {
		f.Fatal(err)
	}
	verifier, err := ParseVerifier(opensslPublic)
	if err != nil {
		f.Fatal(err)
	}
	signed := []byte(`{"id":"1"}`)
	f.Add(signed, signer.Sign(signed))
	f.Add([]byte(`{"id":"2"}`), signer.Sign(signed))
	f.Add([]byte{}, "")
	f.Add([]byte("\x00\xff"), "ed25519=")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		if verifier.Verify(body, sig) == nil && (string(body) != string(signed) || sig != signer.Sign(signed)) {
			t.Fatalf("accepted a signature the relay did not make: body %q sig %q", body, sig)
		}
	})
}
