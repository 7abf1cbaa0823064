package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
)

// The test key pair: signer is login-user's side (jwt-signing-key), verifyPEM
// every verifier's (jwt-verify-key).
var signer, signingPEM, verifyPEM = auth.NewTestKeys(15 * time.Minute)

// key is the private key that signs the test's hand-made EdDSA tokens.
var key = func() ed25519.PrivateKey {
	b, _ := pem.Decode([]byte(signingPEM))
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		panic(err)
	}
	return k.(ed25519.PrivateKey)
}()

var eddsa = jwt.SigningMethodEdDSA

// newTokens returns the signer and a verifier of its tokens, both reading
// the clock now.
func newTokens(t *testing.T, now time.Time) (*auth.Signer, *auth.Verifier) {
	t.Helper()
	v, err := auth.ParseVerifier(verifyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	return signer.WithClock(clock), v.WithClock(clock)
}

// sign builds a token with arbitrary claims, method and key.
func sign(t *testing.T, method jwt.SigningMethod, signKey any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(signKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseSignerRefusesLifetimeAboveTheCap(t *testing.T) {
	if _, err := auth.ParseSigner(signingPEM, auth.MaxLifetime+time.Second); err == nil {
		t.Error("a lifetime above MaxLifetime was accepted")
	}
	if _, err := auth.ParseSigner(signingPEM, auth.MaxLifetime); err != nil {
		t.Errorf("a lifetime of exactly MaxLifetime: %v", err)
	}
}

// Only Ed25519 keys in the expected PEM blocks are accepted: a verifier
// cannot be built from a private key nor a signer from a public one.
func TestParseKeysRefuse(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPriv, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	rsaPub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	for name, text := range map[string]string{
		"empty": "", "not PEM": "secret", "HMAC secret": strings.Repeat("k", 48),
		"private key": signingPEM, "RSA public key": pemOf("PUBLIC KEY", rsaPub),
		"trailing garbage": verifyPEM + "garbage",
	} {
		if _, err := auth.ParseVerifier(text); err == nil {
			t.Errorf("ParseVerifier(%s) accepted", name)
		}
	}
	for name, text := range map[string]string{
		"empty": "", "HMAC secret": strings.Repeat("k", 48), "public key": verifyPEM,
		"RSA private key": pemOf("PRIVATE KEY", rsaPriv), "two keys": signingPEM + signingPEM,
	} {
		if _, err := auth.ParseSigner(text, 0); err == nil {
			t.Errorf("ParseSigner(%s) accepted", name)
		}
	}
}

// A verify file with several public keys (a rotation) accepts tokens of
// each, and only of those.
func TestVerifierRotation(t *testing.T) {
	next, _, nextPEM := auth.NewTestKeys(0)
	other, _, _ := auth.NewTestKeys(0)
	both, err := auth.ParseVerifier(verifyPEM + nextPEM)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*auth.Signer{"current": signer, "next": next} {
		tok, err := s.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := both.Verify(tok); err != nil {
			t.Errorf("%s key's token refused: %v", name, err)
		}
	}
	tok, _ := other.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	if _, err := both.Verify(tok); err == nil {
		t.Error("a token of a key not in the verify file was accepted")
	}
}

func TestRoundTrip(t *testing.T) {
	now := time.Now()
	sg, tk := newTokens(t, now)
	user := uuid.Must(uuid.NewV7())
	for _, role := range []string{auth.RoleCustomer, auth.RoleAdmin} {
		s, err := sg.Issue(user, role)
		if err != nil {
			t.Fatal(err)
		}
		if alg := strings.Split(s, ".")[0]; alg != "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9" {
			t.Errorf("header %s, want {\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", alg)
		}
		got, err := tk.Verify(s)
		if err != nil {
			t.Fatalf("Verify(%s): %v", role, err)
		}
		if diff := cmp.Diff(auth.Identity{UserID: user, Role: role}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
	if sg.TTL() != 15*time.Minute {
		t.Errorf("TTL = %v", sg.TTL())
	}
}

// An Ed25519 signature is 64 bytes, 86 base64url characters: the last one
// carries 2 bits of the signature and 4 spare bits. Only the spelling whose
// spare bits are zero (the one Issue writes) verifies, so one token cannot be
// sent in 16 spellings, each with its own budget at the edge's limits keyed on
// the Authorization header.
func TestOneTokenHasOneSpelling(t *testing.T) {
	now := time.Now()
	sg, _ := newTokens(t, now)
	tok, err := sg.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	if last < 0 || last&0x0f != 0 {
		t.Fatalf("issued token's last character %q has spare bits set: Issue must write the canonical spelling", tok[len(tok)-1])
	}
	_, tk := newTokens(t, now) // a fresh verifier: nothing remembered
	if _, err := tk.Verify(tok); err != nil {
		t.Fatalf("the issued token: %v", err)
	}
	for spare := 1; spare < 16; spare++ {
		other := tok[:len(tok)-1] + string(alphabet[last|spare])
		if _, err := tk.Verify(other); !fault.Is(err, fault.Unauthenticated, fault.CodeUnauthenticated) {
			t.Errorf("the token with spare bits %04b in its last character: err = %v, want Unauthenticated", spare, err)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Now()
	sg, tk := newTokens(t, now)
	user := uuid.Must(uuid.NewV7()).String()
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": auth.Issuer, "aud": []string{auth.Audience}, "sub": user, "role": auth.RoleCustomer,
			"iat": now.Unix(), "nbf": now.Add(-time.Second).Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	issued, err := sg.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(issued, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	// Swap the payload for one claiming admin, keeping the customer's signature.
	adminPayload := strings.Split(sign(t, eddsa, key, with("role", auth.RoleAdmin)), ".")[1]
	tampered := parts[0] + "." + adminPayload + "." + parts[2]
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := pem.Decode([]byte(verifyPEM))
	pubDER := block.Bytes
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	// The header says EdDSA but the signature is an HMAC of the public key's
	// PEM: a verifier that let the key decide the algorithm would accept it.
	hs := strings.Split(sign(t, jwt.SigningMethodHS256, []byte(verifyPEM), valid()), ".")
	confused := parts[0] + "." + hs[1] + "." + hs[2]

	tests := []struct {
		name  string
		token string
	}{
		{"control: valid claims pass", ""},
		{"expired", sign(t, eddsa, key, with("exp", now.Add(-time.Minute).Unix()))},
		{"no expiry", sign(t, eddsa, key, with("exp", nil))},
		{"not yet valid", sign(t, eddsa, key, with("nbf", now.Add(time.Minute).Unix()))},
		{"lives ten years", sign(t, eddsa, key, with("exp", now.AddDate(10, 0, 0).Unix()))},
		{"lives just over the cap", sign(t, eddsa, key, with("exp", now.Add(auth.MaxLifetime+time.Second).Unix()))},
		{"no issued-at", sign(t, eddsa, key, with("iat", nil))},
		{"issued in the future", sign(t, eddsa, key, with("iat", now.Add(time.Minute).Unix()))},
		{"forged signature", forged},
		{"payload swapped under a valid signature", tampered},
		{"signed with another Ed25519 key", sign(t, eddsa, otherKey, valid())},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid())},
		// Algorithm confusion: HMAC keyed with what every verifier holds.
		{"HS256 keyed with the public key's PEM", sign(t, jwt.SigningMethodHS256, []byte(verifyPEM), valid())},
		{"HS256 keyed with the public key's DER", sign(t, jwt.SigningMethodHS256, pubDER, valid())},
		{"HS256 keyed with the raw public key", sign(t, jwt.SigningMethodHS256, []byte(key.Public().(ed25519.PublicKey)), valid())},
		{"HS512 keyed with the public key's PEM", sign(t, jwt.SigningMethodHS512, []byte(verifyPEM), valid())},
		{"HS256 with a guessed secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("z", 32)), valid())},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, valid())},
		{"ES256 (P-256)", sign(t, jwt.SigningMethodES256, p256, valid())},
		{"ES384 (P-384)", sign(t, jwt.SigningMethodES384, p384, valid())},
		{"EdDSA header, HS256 signature with the PEM", confused},
		{"wrong issuer", sign(t, eddsa, key, with("iss", "someone-else"))},
		{"no issuer", sign(t, eddsa, key, with("iss", nil))},
		{"wrong audience", sign(t, eddsa, key, with("aud", []string{"other-api"}))},
		{"unknown role", sign(t, eddsa, key, with("role", "superuser"))},
		{"no role", sign(t, eddsa, key, with("role", nil))},
		{"subject not a uuid", sign(t, eddsa, key, with("sub", "alice"))},
		{"garbage", "not.a.token"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "control: valid claims pass" {
				if _, err := tk.Verify(sign(t, eddsa, key, valid())); err != nil {
					t.Fatalf("the valid control token failed: %v", err)
				}
				return
			}
			id, err := tk.Verify(tt.token)
			if !fault.Is(err, fault.Unauthenticated, "unauthenticated") {
				t.Fatalf("Verify = %+v, %v; want unauthenticated", id, err)
			}
			if id != (auth.Identity{}) {
				t.Errorf("a refused token still yields identity %+v", id)
			}
		})
	}
}

func TestExpiresWithTheClock(t *testing.T) {
	start := time.Now()
	sg, _ := newTokens(t, start)
	s, err := sg.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	_, before := newTokens(t, start.Add(14*time.Minute))
	if _, err := before.Verify(s); err != nil {
		t.Errorf("valid before expiry: %v", err)
	}
	_, after := newTokens(t, start.Add(16*time.Minute))
	if _, err := after.Verify(s); err == nil {
		t.Error("accepted after expiry")
	}
}

func TestFromRequestAndRequireAdmin(t *testing.T) {
	sg, tk := newTokens(t, time.Now())
	customer, _ := sg.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	admin, _ := sg.Issue(uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	tests := []struct {
		name      string
		header    string
		wantUser  fault.Kind // -1: accepted
		wantAdmin fault.Kind
	}{
		{"customer", "Bearer " + customer, -1, fault.Forbidden},
		{"admin", "Bearer " + admin, -1, -1},
		// Only the spelling login-user hands out is read: each other one is a
		// new Authorization value, so a new count for the edge's per-token
		// limits (docs/edge.md, "Rate limits").
		{"lower-case scheme", "bearer " + admin, fault.Unauthenticated, fault.Unauthenticated},
		{"upper-case scheme", "BEARER " + admin, fault.Unauthenticated, fault.Unauthenticated},
		{"two spaces", "Bearer  " + admin, fault.Unauthenticated, fault.Unauthenticated},
		{"a tab", "Bearer\t" + admin, fault.Unauthenticated, fault.Unauthenticated},
		{"a leading space", " Bearer " + admin, fault.Unauthenticated, fault.Unauthenticated},
		{"a trailing space", "Bearer " + admin + " ", fault.Unauthenticated, fault.Unauthenticated},
		{"missing header", "", fault.Unauthenticated, fault.Unauthenticated},
		{"no scheme", customer, fault.Unauthenticated, fault.Unauthenticated},
		{"basic scheme", "Basic " + customer, fault.Unauthenticated, fault.Unauthenticated},
		{"empty bearer", "Bearer ", fault.Unauthenticated, fault.Unauthenticated},
		{"bad token", "Bearer abc", fault.Unauthenticated, fault.Unauthenticated},
	}
	kindOf := func(err error) fault.Kind {
		if err == nil {
			return -1
		}
		return fault.KindOf(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			_, err := tk.FromRequest(r)
			_, adminErr := tk.RequireAdmin(r)
			got := []fault.Kind{kindOf(err), kindOf(adminErr)}
			if diff := cmp.Diff([]fault.Kind{tt.wantUser, tt.wantAdmin}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPasswords(t *testing.T) {
	hash, err := auth.HashPassword(context.Background(), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$") {
		t.Errorf("hash %q is not PHC argon2id", hash)
	}
	other, _ := auth.HashPassword(context.Background(), "correct horse")
	if other == hash {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	parts := strings.Split(hash, "$")
	tests := []struct {
		name, hash, password string
		want                 bool
		wantErr              bool
	}{
		{"right password", hash, "correct horse", true, false},
		{"wrong password", hash, "correct horse!", false, false},
		{"empty password", hash, "", false, false},
		{"not a PHC string", "plaintext", "plaintext", false, true},
		{"bcrypt hash", "$2a$10$abcdefghijklmnopqrstuuFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE", "x", false, true},
		{"other version", strings.Replace(hash, "v=19", "v=16", 1), "correct horse", false, true},
		{"bad parameters", strings.Join([]string{"", parts[1], parts[2], "m=x,t=1,p=1", parts[4], parts[5]}, "$"), "correct horse", false, true},
		{"zero threads", strings.Replace(hash, "p=1", "p=0", 1), "correct horse", false, true},
		{"zero iterations", strings.Replace(hash, "t=2", "t=0", 1), "correct horse", false, true},
		{"absurd memory", strings.Replace(hash, "m=19456", "m=4000000000", 1), "correct horse", false, true},
		{"empty key", strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], ""}, "$"), "", false, true},
		{"bad salt", strings.Join([]string{"", parts[1], parts[2], parts[3], "!!!", parts[5]}, "$"), "correct horse", false, true},
		{"bad key", strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "!!!"}, "$"), "correct horse", false, true},
		{"dummy hash never matches a guess", auth.DummyHash(), "correct horse", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.CheckPassword(context.Background(), tt.hash, tt.password)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("CheckPassword = %v, %v; want %v, err %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// A token accepted once is answered from the verifier's cache: no second
// Ed25519 verification (the allocations of a parse are gone), same identity.
func TestVerifiedTokensAreRemembered(t *testing.T) {
	now := time.Now()
	sg, tk := newTokens(t, now)
	user := uuid.Must(uuid.NewV7())
	tok, err := sg.Issue(user, auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	first, err := tk.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	var again auth.Identity
	allocs := testing.AllocsPerRun(100, func() { again, err = tk.Verify(tok) })
	if err != nil || again != first || again.UserID != user || !again.IsAdmin() {
		t.Fatalf("second Verify = %+v, %v; want %+v", again, err, first)
	}
	if allocs > 1 {
		t.Errorf("a token verified before costs %.0f allocations: it was parsed and verified again", allocs)
	}
	// A different token of the same user is its own entry: verified, not confused.
	other, err := sg.Issue(user, auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := tk.Verify(other); err != nil || id.IsAdmin() {
		t.Errorf("the user's customer token = %+v, %v", id, err)
	}
}

// The cache answers what Verify answers at every time: a remembered token is
// refused once exp plus the leeway has passed, exactly when a verifier that
// never saw it refuses it.
func TestRememberedTokensExpireWithTheClock(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	var now time.Time
	clock := func() time.Time { return now }
	sg := signer.WithClock(func() time.Time { return start })
	tok, err := sg.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.ParseVerifier(verifyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cached := v.WithClock(clock)
	now = start
	if _, err := cached.Verify(tok); err != nil {
		t.Fatal(err)
	}
	exp := start.Add(sg.TTL())
	for _, at := range []time.Duration{-time.Second, 4 * time.Second, 4999 * time.Millisecond, 5 * time.Second, 6 * time.Second, time.Hour} {
		now = exp.Add(at)
		_, fresh := v.WithClock(clock).Verify(tok)
		_, got := cached.Verify(tok)
		if (fresh == nil) != (got == nil) {
			t.Errorf("at exp%+v: a fresh verifier says %v, the one that remembers the token says %v", at, fresh, got)
		}
	}
}

// BenchmarkVerify: a token's first check (Ed25519) against a token seen
// before (the cache): go test -run '^$' -bench Verify -benchmem ./internal/auth
func BenchmarkVerify(b *testing.B) {
	v, err := auth.ParseVerifier(verifyPEM)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := signer.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.WithClock(time.Now).Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("seen", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
