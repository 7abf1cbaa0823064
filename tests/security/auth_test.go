package security

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"hash"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/routes"
)

// signJWT builds a compact JWS by hand, so the probes can write headers and
// claims no library would: alg is none, HS256, HS384 or HS512 (key is the
// HMAC key), EdDSA (key is an ed25519.PrivateKey), RS256 or ES256 (signed
// with the fixture's throwaway RSA and P-256 keys).
func signJWT(header, claims map[string]any, alg string, key []byte) string {
	header["alg"] = alg
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	var h func() hash.Hash
	switch alg {
	case "HS256":
		h = sha256.New
	case "HS384":
		h = sha512.New384
	case "HS512":
		h = sha512.New
	case "EdDSA":
		return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(ed25519.PrivateKey(key), []byte(input)))
	case "RS256":
		sum := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(rand.Reader, throwawayRSA, crypto.SHA256, sum[:])
		if err != nil {
			panic(err)
		}
		return input + "." + base64.RawURLEncoding.EncodeToString(sig)
	case "ES256":
		sum := sha256.Sum256([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, throwawayP256, sum[:])
		if err != nil {
			panic(err)
		}
		sig := make([]byte, 64) // JOSE: r || s, 32 bytes each
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return input + "." + base64.RawURLEncoding.EncodeToString(sig)
	default:
		return input + "."
	}
	mac := hmac.New(h, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// throwawayRSA and throwawayP256 sign the RS256 and ES256 forgeries: keys
// the shop has never seen, for algorithms it must refuse before any key.
var (
	throwawayRSA  = must(rsa.GenerateKey(rand.Reader, 2048))
	throwawayP256 = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// claimsFor are the claims auth.Signer.Issue writes, for user with role,
// valid for ten minutes from now.
func claimsFor(user uuid.UUID, role string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": auth.Issuer, "aud": []string{auth.Audience}, "sub": user.String(), "role": role,
		"iat": now.Unix(), "nbf": now.Add(-time.Second).Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": uuid.NewString()}
}

// forgery is a token that must be refused.
type forgery struct{ name, token string }

// forgeries are tokens nobody without the signing key can make accepted,
// and validly signed tokens the shop must still refuse.
func (f *fixture) forgeries(t testing.TB) []forgery {
	// The signing key exists only in login-user (and this test): signed with
	// it, the claim checks are probed; the public key is what every verifier
	// and the edge hold, the material of an algorithm-confusion forgery.
	key := signingKey(t, f.ReadSecret(t, "jwt-signing-key"))
	pubPEM := []byte(f.ReadSecret(t, "jwt-verify-key"))
	pubBlock, _ := pem.Decode(pubPEM)
	if pubBlock == nil {
		t.Fatal("jwt-verify-key is not PEM")
	}
	pubRaw := []byte(ed25519.PrivateKey(key).Public().(ed25519.PublicKey))
	customer := func() map[string]any { return claimsFor(f.userA, auth.RoleCustomer) }
	with := func(c map[string]any, k string, v any) map[string]any {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	hdr := func(kv ...string) map[string]any {
		h := map[string]any{"typ": "JWT"}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	attacker := []byte("attacker-chosen-key-attacker-chosen-key")
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	valid := signJWT(hdr(), customer(), "EdDSA", key)
	parts := strings.Split(valid, ".")
	tamper := func(c map[string]any) string {
		b, _ := json.Marshal(c)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}
	now := time.Now()
	out := []forgery{
		{"alg none", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "none", nil)},
		{"alg none, valid signature kept", strings.Split(signJWT(hdr(), customer(), "none", nil), ".")[0] + "." + parts[1] + "." + parts[2]},
		{"alg NONE", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "NONE", nil)},
		{"HS256 with an empty key", signJWT(hdr(), customer(), "HS256", nil)},
		// Algorithm confusion: an HMAC keyed with the public key, which a
		// verifier that let the token pick the algorithm would accept.
		{"HS256 keyed with the public key's PEM", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "HS256", pubPEM)},
		{"HS256 keyed with the public key's PEM, no final newline", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "HS256", []byte(strings.TrimSpace(string(pubPEM))))},
		{"HS256 keyed with the public key's DER", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "HS256", pubBlock.Bytes)},
		{"HS256 keyed with the raw public key", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "HS256", pubRaw)},
		{"HS384 keyed with the public key's PEM", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "HS384", pubPEM)},
		{"HS512 keyed with the public key's PEM", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "HS512", pubPEM)},
		{"EdDSA header, HMAC-of-the-PEM signature", parts[0] + "." + strings.SplitN(signJWT(hdr(), customer(), "HS256", pubPEM), ".", 2)[1]},
		{"RS256 with another key", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "RS256", nil)},
		{"ES256 with another key", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "ES256", nil)},
		{"EdDSA with another key", signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "EdDSA", otherKey)},
		{"kid pointing at /dev/null, empty key", signJWT(hdr("kid", "../../../../../../dev/null"), customer(), "HS256", nil)},
		{"kid with SQL, attacker key", signJWT(hdr("kid", "x' UNION SELECT 'attacker-chosen-key-attacker-chosen-key'--"), customer(), "HS256", attacker)},
		{"jku to an attacker's key set", signJWT(hdr("jku", "http://127.0.0.1:1/jwks.json", "kid", "a"), customer(), "HS256", attacker)},
		{"embedded jwk of the attacker's key", signJWT(map[string]any{"typ": "JWT", "jwk": map[string]string{
			"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(attacker)}}, customer(), "HS256", attacker)},
		{"x5u to an attacker's certificate", signJWT(hdr("x5u", "http://127.0.0.1:1/cert.pem"), customer(), "HS256", attacker)},
		{"role claim tampered to admin", tamper(with(customer(), "role", auth.RoleAdmin))},
		{"subject tampered", tamper(with(customer(), "sub", uuid.NewString()))},
		{"signature stripped", parts[0] + "." + parts[1] + "."},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(signJWT(hdr(), customer(), "EdDSA", key), ".")[2][:10] + "AAAA"},
		{"expired", signJWT(hdr(), with(with(customer(), "exp", now.Add(-time.Hour).Unix()), "iat", now.Add(-2*time.Hour).Unix()), "EdDSA", key)},
		{"not yet valid", signJWT(hdr(), with(with(with(customer(), "nbf", now.Add(time.Hour).Unix()), "iat", now.Add(time.Hour).Unix()), "exp", now.Add(2*time.Hour).Unix()), "EdDSA", key)},
		{"no issued-at", signJWT(hdr(), with(customer(), "iat", nil), "EdDSA", key)},
		{"no expiry", signJWT(hdr(), with(customer(), "exp", nil), "EdDSA", key)},
		{"lives 48 hours", signJWT(hdr(), with(customer(), "exp", now.Add(48*time.Hour).Unix()), "EdDSA", key)},
		{"lives ten years", signJWT(hdr(), with(customer(), "exp", now.AddDate(10, 0, 0).Unix()), "EdDSA", key)},
		{"unknown role superadmin", signJWT(hdr(), with(customer(), "role", "superadmin"), "EdDSA", key)},
		{"no role", signJWT(hdr(), with(customer(), "role", nil), "EdDSA", key)},
		{"subject not a UUID", signJWT(hdr(), with(customer(), "sub", "admin"), "EdDSA", key)},
		{"no subject", signJWT(hdr(), with(customer(), "sub", nil), "EdDSA", key)},
		{"another issuer", signJWT(hdr(), with(customer(), "iss", "evil"), "EdDSA", key)},
		{"another audience", signJWT(hdr(), with(customer(), "aud", []string{"other-api"}), "EdDSA", key)},
		{"not a JWT", "not-a-token"},
		{"empty", ""},
		// Overlong: well under the 1 MiB of headers the local edge, the
		// gateway and the functions read (Go's default), so each must
		// refuse it as a token (Kong's nginx refuses a header line over
		// 8 KiB itself).
		{"overlong: 16 KiB of claims, another key", signJWT(hdr(), with(customer(), "pad", strings.Repeat("A", 16<<10)), "EdDSA", otherKey)},
		{"overlong: 256 KiB of claims, another key", signJWT(hdr(), with(customer(), "pad", strings.Repeat("A", 256<<10)), "EdDSA", otherKey)},
	}
	for _, g := range []string{"secret", "changeme", "shop", "jwt-secret", "admin-dev-password", "your-256-bit-secret",
		"development", "password"} {
		out = append(out, forgery{"HS256 with guessed key " + g, signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "HS256", []byte(g))})
	}
	return out
}

// signingKey parses the PEM jwt-signing-key.
func signingKey(t testing.TB, pemText string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(pemText))
	if b == nil {
		t.Fatal("jwt-signing-key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		t.Fatalf("jwt-signing-key is a %T", k)
	}
	return priv
}

// probeTokens sends every forgery to every route that needs a token, through
// the edge and straight to the function through the gateway: all 401 problems.
func (f *fixture) probeTokens(t *testing.T) {
	forged := f.forgeries(t)
	sent := 0
	for _, o := range f.ops {
		if !o.Token() {
			continue
		}
		for _, g := range forged {
			for _, via := range []string{"edge", "function"} {
				u := f.url(o, f.values())
				if via == "function" {
					u = f.GatewayURL + "/function/" + o.Function + concrete(o.Route, f.values())
				}
				req := request{Method: o.Method, URL: u, Header: map[string]string{"Authorization": "Bearer " + g.token}}
				if o.Body != nil {
					req.Body = mustJSON(t, f.example(t, o))
				}
				a := do(t, req)
				sent++
				if a.Status != http.StatusUnauthorized || a.problem() != "" {
					t.Errorf("%s through the %s with a token %s: %s, want a 401 problem", o, via, g.name, a)
				}
			}
		}
		// Header spellings other than "Bearer <token>" carry no token.
		for _, h := range []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("admin:admin")), "Token " + f.admin, f.admin} {
			a := do(t, request{Method: o.Method, URL: f.url(o, f.values()), Header: map[string]string{"Authorization": h}})
			sent++
			if a.Status != http.StatusUnauthorized || a.problem() != "" {
				t.Errorf("%s with Authorization %.12q…: %s, want a 401 problem", o, h, a)
			}
		}
	}
	t.Logf("%d requests with forged or refused tokens", sent)
}

// probeAdminRoutes calls every admin route with a customer's token (403) and
// with none (401), through the edge and straight to the function.
func (f *fixture) probeAdminRoutes(t *testing.T) {
	customer := f.Token(t, auth.RoleCustomer)
	for _, o := range f.ops {
		if o.Access != routes.Admin {
			continue
		}
		for _, via := range []string{"edge", "function"} {
			u := f.url(o, f.values())
			if via == "function" {
				u = f.GatewayURL + "/function/" + o.Function + concrete(o.Route, f.values())
			}
			for _, c := range []struct {
				token string
				want  int
			}{{customer, http.StatusForbidden}, {"", http.StatusUnauthorized}} {
				req := request{Method: o.Method, URL: u, Token: c.token}
				if o.Body != nil {
					req.Body = mustJSON(t, f.example(t, o))
				}
				if a := do(t, req); a.Status != c.want || a.problem() != "" {
					t.Errorf("%s through the %s (token: %t): %s, want a %d problem", o, via, c.token != "", a, c.want)
				}
			}
		}
	}
}

// probeInternalFunctions checks that no function outside gateway/kong.yml
// (internal, event and scheduled ones) is reachable through the edge, that
// each refuses calls through the gateway without a valid internal credential
// (401), and that each refuses the real credential of every internal caller
// it does not accept (403): the accepted callers are routes.Table's Callers,
// the declaration the functions check against.
func (f *fixture) probeInternalFunctions(t *testing.T) {
	routed := kongServices(t)
	edge := hostOf(t, f.EdgeURL)
	before := f.invocations(t)
	calls := map[string]int{} // gateway calls per function
	n := 0
	for _, r := range routes.Table() {
		if r.Kind == routes.Public {
			continue
		}
		n++
		if routed[r.Function] {
			t.Errorf("%s is a %s function but gateway/kong.yml routes it", r.Function, r.Kind)
		}
		for _, target := range []string{"/function/" + r.Function, "/async-function/" + r.Function, "/" + r.Function,
			"/api/v1/" + r.Function, "/function/" + r.Function + "/api/v1/products", "/api/v1/../function/" + r.Function} {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				if a := raw(t, edge, method, target); a.Status != http.StatusNotFound || a.problem() != "" {
					t.Errorf("%s %s at the edge: %s, want a 404 problem", method, target, a)
				}
			}
		}
		calls[r.Function] = 0
		unknown, err := auth.NewCredential(r.Callers[0]) // right form and name, not in internal-callers
		if err != nil {
			t.Fatal(err)
		}
		for _, cred := range []string{"", "guess", strings.Repeat("a", 64), unknown} {
			calls[r.Function]++
			h := map[string]string{}
			if cred != "" {
				h[auth.InternalHeader] = cred
			}
			a := do(t, request{Method: http.MethodPost, URL: f.GatewayURL + "/function/" + r.Function, Header: h, Body: []byte(`{}`)})
			if a.Status != http.StatusUnauthorized || a.problem() != "" {
				t.Errorf("POST /function/%s through the gateway with credential %.20q: %s, want a 401 problem", r.Function, cred, a)
			}
		}
		for _, caller := range routes.AllCallers() {
			if slices.Contains(r.Callers, caller) {
				continue
			}
			calls[r.Function]++
			h := map[string]string{auth.InternalHeader: f.ReadSecret(t, auth.CredentialSecret(caller))}
			a := do(t, request{Method: http.MethodPost, URL: f.GatewayURL + "/function/" + r.Function, Header: h, Body: []byte(`{}`)})
			if a.Status != http.StatusForbidden || a.problem() != "" || !strings.Contains(string(a.Body), `"code":"forbidden"`) {
				t.Errorf("POST /function/%s through the gateway as %s: %s, want a 403 forbidden problem", r.Function, caller, a)
			}
		}
	}
	if n == 0 {
		t.Fatal("the route table has no internal function")
	}
	after := f.invocations(t)
	for fn, c := range before {
		if r, _ := routes.Lookup(fn); r.Kind != routes.Public && after[fn] != c+calls[fn] {
			t.Errorf("%s was invoked %d times, want the %d gateway calls only (none through the edge)", fn, after[fn]-c, calls[fn])
		}
	}
}

// invocations reads every function's invocation count from the gateway API.
func (f *fixture) invocations(t testing.TB) map[string]int {
	t.Helper()
	a := do(t, request{Method: http.MethodGet, URL: f.GatewayURL + "/system/functions", Header: f.gatewayAuth()})
	var list []struct {
		Name            string
		InvocationCount float64 `json:"invocationCount"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &list) != nil {
		t.Fatalf("GET /system/functions: %s", a)
	}
	out := map[string]int{}
	for _, fn := range list {
		out[fn.Name] = int(fn.InvocationCount)
	}
	return out
}

// gatewayAuth is the basic-auth header of the gateway API when the runtime
// has credentials (<state>/secrets/basic-auth-user and -password), none
// otherwise.
func (f *fixture) gatewayAuth() map[string]string {
	pass, err := os.ReadFile(filepath.Join(f.SecretsDir, "basic-auth-password"))
	if err != nil {
		return nil
	}
	user := "admin"
	if b, err := os.ReadFile(filepath.Join(f.SecretsDir, "basic-auth-user")); err == nil {
		user = strings.TrimSpace(string(b))
	}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, strings.TrimSpace(string(pass)))
	return map[string]string{"Authorization": r.Header.Get("Authorization")}
}
