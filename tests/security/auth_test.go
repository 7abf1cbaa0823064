package security

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/routes"
)

// signJWT builds a compact JWS by hand, so the probes can write headers and
// claims no library would: alg is none, HS256, HS384 or HS512.
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
	default:
		return input + "."
	}
	mac := hmac.New(h, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// claimsFor are the claims auth.Verifier.Issue writes, for user with role,
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
	key := []byte(f.ReadSecret(t, "jwt-secret"))
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
	valid := signJWT(hdr(), customer(), "HS256", key)
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
		{"HS384 with the real key", signJWT(hdr(), customer(), "HS384", key)},
		{"HS512 with the real key", signJWT(hdr(), customer(), "HS512", key)},
		{"kid pointing at /dev/null, empty key", signJWT(hdr("kid", "../../../../../../dev/null"), customer(), "HS256", nil)},
		{"kid with SQL, attacker key", signJWT(hdr("kid", "x' UNION SELECT 'attacker-chosen-key-attacker-chosen-key'--"), customer(), "HS256", attacker)},
		{"jku to an attacker's key set", signJWT(hdr("jku", "http://127.0.0.1:1/jwks.json", "kid", "a"), customer(), "HS256", attacker)},
		{"embedded jwk of the attacker's key", signJWT(map[string]any{"typ": "JWT", "jwk": map[string]string{
			"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(attacker)}}, customer(), "HS256", attacker)},
		{"x5u to an attacker's certificate", signJWT(hdr("x5u", "http://127.0.0.1:1/cert.pem"), customer(), "HS256", attacker)},
		{"role claim tampered to admin", tamper(with(customer(), "role", auth.RoleAdmin))},
		{"subject tampered", tamper(with(customer(), "sub", uuid.NewString()))},
		{"signature stripped", parts[0] + "." + parts[1] + "."},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(signJWT(hdr(), customer(), "HS256", key), ".")[2][:10] + "AAAA"},
		{"expired", signJWT(hdr(), with(with(customer(), "exp", now.Add(-time.Hour).Unix()), "iat", now.Add(-2*time.Hour).Unix()), "HS256", key)},
		{"not yet valid", signJWT(hdr(), with(with(with(customer(), "nbf", now.Add(time.Hour).Unix()), "iat", now.Add(time.Hour).Unix()), "exp", now.Add(2*time.Hour).Unix()), "HS256", key)},
		{"no issued-at", signJWT(hdr(), with(customer(), "iat", nil), "HS256", key)},
		{"no expiry", signJWT(hdr(), with(customer(), "exp", nil), "HS256", key)},
		{"lives 48 hours", signJWT(hdr(), with(customer(), "exp", now.Add(48*time.Hour).Unix()), "HS256", key)},
		{"lives ten years", signJWT(hdr(), with(customer(), "exp", now.AddDate(10, 0, 0).Unix()), "HS256", key)},
		{"unknown role superadmin", signJWT(hdr(), with(customer(), "role", "superadmin"), "HS256", key)},
		{"no role", signJWT(hdr(), with(customer(), "role", nil), "HS256", key)},
		{"subject not a UUID", signJWT(hdr(), with(customer(), "sub", "admin"), "HS256", key)},
		{"no subject", signJWT(hdr(), with(customer(), "sub", nil), "HS256", key)},
		{"another issuer", signJWT(hdr(), with(customer(), "iss", "evil"), "HS256", key)},
		{"another audience", signJWT(hdr(), with(customer(), "aud", []string{"other-api"}), "HS256", key)},
		{"not a JWT", "not-a-token"},
		{"empty", ""},
	}
	for _, g := range []string{"secret", "changeme", "shop", "jwt-secret", "admin-dev-password", "your-256-bit-secret",
		"development", "password"} {
		out = append(out, forgery{"HS256 with guessed key " + g, signJWT(hdr(), claimsFor(f.userA, auth.RoleAdmin), "HS256", []byte(g))})
	}
	return out
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
// (internal, event and scheduled ones) is reachable through the edge, and
// that each refuses calls through the gateway without the internal
// credential.
func (f *fixture) probeInternalFunctions(t *testing.T) {
	routed := kongServices(t)
	edge := hostOf(t, f.EdgeURL)
	before := f.invocations(t)
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
		for _, cred := range []string{"", "guess", strings.Repeat("a", 64)} {
			h := map[string]string{}
			if cred != "" {
				h[auth.InternalHeader] = cred
			}
			a := do(t, request{Method: http.MethodPost, URL: f.GatewayURL + "/function/" + r.Function, Header: h, Body: []byte(`{}`)})
			if a.Status != http.StatusUnauthorized || a.problem() != "" {
				t.Errorf("POST /function/%s through the gateway with credential %q: %s, want a 401 problem", r.Function, cred, a)
			}
		}
	}
	if n == 0 {
		t.Fatal("the route table has no internal function")
	}
	after := f.invocations(t)
	for fn, c := range before {
		if r, _ := routes.Lookup(fn); r.Kind != routes.Public && after[fn] != c+3 {
			t.Errorf("%s was invoked %d times, want the 3 gateway calls only (none through the edge)", fn, after[fn]-c)
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
