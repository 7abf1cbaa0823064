package edge

import (
	"cmp"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shopfaas/shop/internal/fault"
)

// JWTConfig is the config of Kong's jwt plugin.
type JWTConfig struct {
	// URIParamNames are query parameters a token is read from (default jwt).
	URIParamNames []string `json:"uri_param_names"`
	// CookieNames are cookies a token is read from.
	CookieNames []string `json:"cookie_names"`
	// HeaderNames are headers a Bearer token is read from (default authorization).
	HeaderNames []string `json:"header_names"`
	// ClaimsToVerify are checked against the clock: exp and/or nbf.
	ClaimsToVerify []string `json:"claims_to_verify"`
	// KeyClaimName is the claim that selects the consumer's credential (default iss).
	KeyClaimName string `json:"key_claim_name"`
	// SecretIsBase64 means credentials' secrets are base64-encoded.
	SecretIsBase64 bool `json:"secret_is_base64"`
	// Anonymous would let unauthenticated requests through as a consumer;
	// not supported locally.
	Anonymous *string `json:"anonymous"`
	// RunOnPreflight checks tokens on OPTIONS requests too (default true).
	RunOnPreflight bool `json:"run_on_preflight"`
	// MaximumExpiration refuses tokens whose exp is further away, in
	// seconds (0: no limit).
	MaximumExpiration int64 `json:"maximum_expiration"`
	// Realm is announced in WWW-Authenticate.
	Realm *string `json:"realm"`
}

func (c *JWTConfig) setDefaults() {
	c.URIParamNames, c.HeaderNames = []string{"jwt"}, []string{"authorization"}
	c.KeyClaimName, c.RunOnPreflight = "iss", true
}

// Validate reports anonymous consumers, claims other than exp and nbf, a
// missing key claim and a negative maximum expiration.
func (c *JWTConfig) Validate() error {
	var errs []error
	if c.Anonymous != nil && *c.Anonymous != "" {
		errs = append(errs, errors.New("anonymous consumers are not supported by the local edge"))
	}
	for _, claim := range c.ClaimsToVerify {
		if claim != "exp" && claim != "nbf" {
			errs = append(errs, fmt.Errorf("claims_to_verify %q (exp or nbf)", claim))
		}
	}
	if c.KeyClaimName == "" {
		errs = append(errs, errors.New("key_claim_name is required"))
	}
	if c.MaximumExpiration < 0 {
		errs = append(errs, fmt.Errorf("maximum_expiration %d must not be negative", c.MaximumExpiration))
	}
	return errors.Join(errs...)
}

// jwtCredential is one consumer's jwt_secrets entry, its key resolved: the
// HMAC secret (HS256/384/512) or the Ed25519 public key (EdDSA).
type jwtCredential struct {
	// consumer identifies the consumer for rate limits (consumerKey).
	consumer, key, algorithm string
	username                 string // the consumer's username, "" when none
	customID                 string // the consumer's custom_id, "" when none
	secret                   []byte
	publicKey                ed25519.PublicKey
}

// verifyKey is what the credential verifies a signature with.
func (c jwtCredential) verifyKey() any {
	if c.algorithm == "EdDSA" {
		return c.publicKey
	}
	return c.secret
}

// jwtAlgorithms are the credential algorithms the local edge implements, of
// the ones Kong 3.9 knows (HS/RS/ES/PS 256-512, EdDSA): the shop's credential
// is EdDSA.
var jwtAlgorithms = []string{"HS256", "HS384", "HS512", "EdDSA"}

// bearer is the one spelling of a bearer header read: "Bearer ", one space,
// the token. Kong 3.9's jwt plugin also reads "bearer" and any whitespace
// around the token, each spelling a new Authorization value and so a new
// count for limit_by: header; the shop's functions refuse those spellings
// (auth.FromRequest), and the local edge refuses them at once so that the
// per-token limits hold as documented (docs/edge.md, "Rate limits").
var bearer = regexp.MustCompile(`^Bearer (\S+)$`)

// jwtAuth is Kong's jwt plugin for HMAC and EdDSA credentials: the token is
// taken from the configured query parameters, cookies and headers (Bearer);
// the key claim (iss) selects the consumer's credential, whose algorithm must
// be the token's header alg exactly (so an HS256 token keyed with an EdDSA
// credential's public key is refused, as by Kong's handler); the signature
// and claims_to_verify (exp, nbf) are checked.
// Any failure is 401 — a problem body with code "unauthenticated" where
// Kong answers {"message": "Unauthorized"} or a similar message. The
// upstream receives X-Consumer-Username and X-Credential-Identifier as from
// Kong; functions still verify the token themselves.
type jwtAuth struct {
	cfg       JWTConfig
	creds     map[string]jwtCredential // by key
	headers   []string                 // canonical HeaderNames
	challenge string                   // WWW-Authenticate
	now       func() time.Time
}

func newJWT(c JWTConfig, sc *scope) (plugin, error) {
	p := &jwtAuth{cfg: c, creds: map[string]jwtCredential{}, challenge: "Bearer", now: sc.now}
	for _, cons := range sc.consumers {
		for _, s := range cons.JWTSecrets {
			cred, err := credential(cons, s, c.SecretIsBase64, sc.getenv)
			if err != nil {
				return nil, err
			}
			p.creds[s.Key] = cred
		}
	}
	for _, h := range c.HeaderNames {
		p.headers = append(p.headers, http.CanonicalHeaderKey(h))
	}
	if c.Realm != nil && *c.Realm != "" {
		p.challenge += ` realm="` + *c.Realm + `"`
	}
	return p, nil
}

// credential resolves a consumer's credential: for EdDSA its rsa_public_key
// (one PEM PUBLIC KEY block of an Ed25519 key: Kong loads one key per
// credential), for HS256/384/512 its secret.
func credential(cons Consumer, s JWTSecret, base64Secret bool, getenv func(string) string) (jwtCredential, error) {
	alg := cmp.Or(s.Algorithm, "HS256")
	if !slices.Contains(jwtAlgorithms, alg) {
		return jwtCredential{}, fmt.Errorf("consumer %s: algorithm %s is not supported locally (%s)", cons.Username, alg, strings.Join(jwtAlgorithms, ", "))
	}
	if alg == "EdDSA" {
		text, err := resolve(s.RSAPublicKey, getenv)
		if err != nil {
			return jwtCredential{}, fmt.Errorf("consumer %s: %w", cons.Username, err)
		}
		pub, err := ed25519PublicKey(text)
		if err != nil {
			return jwtCredential{}, fmt.Errorf("consumer %s credential %s: rsa_public_key: %w", cons.Username, s.Key, err)
		}
		return jwtCredential{consumer: consumerKey(cons), username: cons.Username, customID: cons.CustomID,
			key: s.Key, algorithm: alg, publicKey: pub}, nil
	}
	secret, err := resolve(s.Secret, getenv)
	if err != nil {
		return jwtCredential{}, fmt.Errorf("consumer %s: %w", cons.Username, err)
	}
	key := []byte(secret)
	if base64Secret {
		if key, err = base64.StdEncoding.DecodeString(secret); err != nil {
			return jwtCredential{}, fmt.Errorf("consumer %s: secret is not base64", cons.Username)
		}
	}
	if len(key) == 0 {
		return jwtCredential{}, fmt.Errorf("consumer %s credential %s has no secret", cons.Username, s.Key)
	}
	return jwtCredential{consumer: consumerKey(cons), username: cons.Username, customID: cons.CustomID,
		key: s.Key, algorithm: alg, secret: key}, nil
}

// consumerKey identifies cons for limit_by consumer, where Kong counts by
// the consumer's id, which the local edge has none of: its username, else
// its custom_id, each marked as which it is, so that a consumer named X and
// another whose custom_id is X never share a count (Kong keeps each unique
// among its kind only; Parse refuses a repeated one).
func consumerKey(cons Consumer) string {
	if cons.Username != "" {
		return "username:" + cons.Username
	}
	return "custom_id:" + cons.CustomID
}

// ed25519PublicKey parses exactly one PEM PUBLIC KEY block holding an
// Ed25519 key.
func ed25519PublicKey(text string) (ed25519.PublicKey, error) {
	block, rest := pem.Decode([]byte(text))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("want a PEM PUBLIC KEY block")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("want exactly one PEM PUBLIC KEY block (Kong loads one key per credential)")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("want an Ed25519 key, got %T", k)
	}
	return pub, nil
}

func (p *jwtAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.cfg.RunOnPreflight && r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		cred, detail := p.authenticate(r)
		if detail != "" {
			w.Header().Set("WWW-Authenticate", p.challenge)
			writeProblem(w, http.StatusUnauthorized, fault.CodeUnauthenticated, detail)
			return
		}
		// Kong's set_consumer sets or clears every consumer header, so
		// a client's never reaches the upstream: the local edge has no
		// consumer ids, so X-Consumer-ID is cleared, and a consumer
		// without a username (a custom_id only) has X-Consumer-Username
		// cleared, never filled with its custom_id.
		if cred.username != "" {
			r.Header.Set("X-Consumer-Username", cred.username)
		} else {
			r.Header.Del("X-Consumer-Username")
		}
		r.Header.Set("X-Credential-Identifier", cred.key)
		r.Header.Del("X-Consumer-Id")
		if cred.customID != "" {
			r.Header.Set("X-Consumer-Custom-Id", cred.customID)
		} else {
			r.Header.Del("X-Consumer-Custom-Id")
		}
		r.Header.Del("X-Anonymous-Consumer")
		next.ServeHTTP(w, withIdentity(r, identity{consumer: cred.consumer, credential: cred.key}))
	})
}

// authenticate returns the credential of r's one valid token, or why there
// is none.
func (p *jwtAuth) authenticate(r *http.Request) (jwtCredential, string) {
	tokens := p.tokens(r)
	switch len(tokens) {
	case 0:
		return jwtCredential{}, "a bearer token is required"
	case 1:
	default:
		return jwtCredential{}, "multiple tokens provided"
	}
	var cred jwtCredential
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tokens[0], claims, func(t *jwt.Token) (any, error) {
		key, _ := claims[p.cfg.KeyClaimName].(string)
		if key == "" {
			return nil, fmt.Errorf("no mandatory %q in claims", p.cfg.KeyClaimName)
		}
		var ok bool
		if cred, ok = p.creds[key]; !ok {
			return nil, fmt.Errorf("no credentials found for given %q", p.cfg.KeyClaimName)
		}
		if t.Method.Alg() != cred.algorithm {
			return nil, errors.New("invalid algorithm")
		}
		return cred.verifyKey(), nil
	}, jwt.WithoutClaimsValidation(), jwt.WithValidMethods(jwtAlgorithms))
	if err != nil {
		return jwtCredential{}, "the bearer token is not valid"
	}
	return cred, p.checkClaims(claims)
}

// tokens collects the distinct tokens of r from every configured place.
func (p *jwtAuth) tokens(r *http.Request) []string {
	var tokens []string
	q := r.URL.Query()
	for _, n := range p.cfg.URIParamNames {
		if v := q.Get(n); v != "" {
			tokens = append(tokens, v)
		}
	}
	for _, n := range p.cfg.CookieNames {
		if ck, err := r.Cookie(n); err == nil && ck.Value != "" {
			tokens = append(tokens, ck.Value)
		}
	}
	// Only a header's first value, as Kong (retrieve_tokens reads
	// token_header[1]), the rate limits (limit_by: header) and the
	// functions read it: a token in a later value would pass while a
	// value the client varies at will is counted.
	for _, h := range p.headers {
		if m := bearer.FindStringSubmatch(r.Header.Get(h)); m != nil {
			tokens = append(tokens, m[1])
		}
	}
	slices.Sort(tokens)
	return slices.Compact(tokens)
}

// checkClaims checks claims_to_verify and maximum_expiration; "" when they hold.
func (p *jwtAuth) checkClaims(claims jwt.MapClaims) string {
	at := float64(p.now().Unix())
	for _, name := range p.cfg.ClaimsToVerify {
		v, ok := claims[name].(float64)
		switch {
		case !ok || math.IsNaN(v):
			return "the token's " + name + " claim must be a number"
		case name == "exp" && v <= at:
			return "the token has expired"
		case name == "nbf" && v > at:
			return "the token is not valid yet"
		}
	}
	if p.cfg.MaximumExpiration > 0 {
		exp, ok := claims["exp"].(float64)
		if !ok || exp-at > float64(p.cfg.MaximumExpiration) {
			return "the token's exp exceeds maximum_expiration"
		}
	}
	return ""
}
