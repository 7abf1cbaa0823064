package edge

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// jwtCredential is one consumer's jwt_secrets entry, its secret resolved.
type jwtCredential struct {
	consumer, key, algorithm string
	secret                   []byte
}

var bearer = regexp.MustCompile(`^\s*[Bb]earer\s+(.+)$`)

// jwtAuth is Kong's jwt plugin for HMAC credentials: the token is taken
// from the configured query parameters, cookies and headers (Bearer); the
// key claim (iss) selects the consumer's credential, whose algorithm must be
// the token's; the signature and claims_to_verify (exp, nbf) are checked.
// Any failure is 401 — a problem body with code "unauthenticated" where
// Kong answers {"message": "Unauthorized"} or a similar message. The
// upstream receives X-Consumer-Username and X-Credential-Identifier as from
// Kong; functions still verify the token themselves.
func jwtAuth(cfg map[string]any, o *Options) (Middleware, error) {
	c := struct {
		URIParamNames     []string `json:"uri_param_names"`
		CookieNames       []string `json:"cookie_names"`
		HeaderNames       []string `json:"header_names"`
		ClaimsToVerify    []string `json:"claims_to_verify"`
		KeyClaimName      string   `json:"key_claim_name"`
		SecretIsBase64    bool     `json:"secret_is_base64"`
		Anonymous         *string  `json:"anonymous"`
		RunOnPreflight    bool     `json:"run_on_preflight"`
		MaximumExpiration int64    `json:"maximum_expiration"`
		Realm             *string  `json:"realm"`
	}{URIParamNames: []string{"jwt"}, HeaderNames: []string{"authorization"}, KeyClaimName: "iss", RunOnPreflight: true}
	if err := decodeConfig(cfg, &c); err != nil {
		return nil, fmt.Errorf("jwt: %w", err)
	}
	if c.Anonymous != nil && *c.Anonymous != "" {
		return nil, errors.New("jwt: anonymous consumers are not supported by the local edge")
	}
	for _, claim := range c.ClaimsToVerify {
		if claim != "exp" && claim != "nbf" {
			return nil, fmt.Errorf("jwt: claims_to_verify %q (exp or nbf)", claim)
		}
	}
	creds := map[string]jwtCredential{}
	for _, cons := range o.consumers {
		for _, s := range cons.JWTSecrets {
			alg := s.Algorithm
			if alg == "" {
				alg = "HS256"
			}
			if !strings.HasPrefix(alg, "HS") {
				return nil, fmt.Errorf("jwt: consumer %s: algorithm %s is not supported locally (HS256/384/512)", cons.Username, alg)
			}
			secret, err := resolve(s.Secret, o.Getenv)
			if err != nil {
				return nil, fmt.Errorf("jwt: consumer %s: %w", cons.Username, err)
			}
			key := []byte(secret)
			if c.SecretIsBase64 {
				if key, err = base64.StdEncoding.DecodeString(secret); err != nil {
					return nil, fmt.Errorf("jwt: consumer %s: secret is not base64", cons.Username)
				}
			}
			if len(key) == 0 {
				return nil, fmt.Errorf("jwt: consumer %s credential %s has no secret", cons.Username, s.Key)
			}
			creds[s.Key] = jwtCredential{consumer: cmpOr(cons.Username, cons.CustomID), key: s.Key, algorithm: alg, secret: key}
		}
	}
	headers := make([]string, len(c.HeaderNames))
	for i, h := range c.HeaderNames {
		headers[i] = http.CanonicalHeaderKey(h)
	}
	challenge := "Bearer"
	if c.Realm != nil && *c.Realm != "" {
		challenge += ` realm="` + *c.Realm + `"`
	}
	now := o.Now
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !c.RunOnPreflight && r.Method == http.MethodOptions {
				next.ServeHTTP(w, r)
				return
			}
			deny := func(detail string) {
				w.Header().Set("WWW-Authenticate", challenge)
				writeProblem(w, http.StatusUnauthorized, "unauthenticated", detail)
			}
			var tokens []string
			q := r.URL.Query()
			for _, n := range c.URIParamNames {
				if v := q.Get(n); v != "" {
					tokens = append(tokens, v)
				}
			}
			for _, n := range c.CookieNames {
				if ck, err := r.Cookie(n); err == nil && ck.Value != "" {
					tokens = append(tokens, ck.Value)
				}
			}
			for _, h := range headers {
				for _, v := range r.Header.Values(h) {
					if m := bearer.FindStringSubmatch(v); m != nil {
						tokens = append(tokens, strings.TrimSpace(m[1]))
					}
				}
			}
			slices.Sort(tokens)
			tokens = slices.Compact(tokens)
			switch len(tokens) {
			case 0:
				deny("a bearer token is required")
				return
			case 1:
			default:
				deny("multiple tokens provided")
				return
			}
			var cred jwtCredential
			claims := jwt.MapClaims{}
			_, err := jwt.ParseWithClaims(tokens[0], claims, func(t *jwt.Token) (any, error) {
				key, _ := claims[c.KeyClaimName].(string)
				if key == "" {
					return nil, fmt.Errorf("no mandatory %q in claims", c.KeyClaimName)
				}
				var ok bool
				if cred, ok = creds[key]; !ok {
					return nil, fmt.Errorf("no credentials found for given %q", c.KeyClaimName)
				}
				if t.Method.Alg() != cred.algorithm {
					return nil, errors.New("invalid algorithm")
				}
				return cred.secret, nil
			}, jwt.WithoutClaimsValidation(), jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}))
			if err != nil {
				deny("the bearer token is not valid")
				return
			}
			at := float64(now().Unix())
			for _, name := range c.ClaimsToVerify {
				v, ok := claims[name].(float64)
				switch {
				case !ok || math.IsNaN(v):
					deny("the token's " + name + " claim must be a number")
					return
				case name == "exp" && v <= at:
					deny("the token has expired")
					return
				case name == "nbf" && v > at:
					deny("the token is not valid yet")
					return
				}
			}
			if c.MaximumExpiration > 0 {
				exp, ok := claims["exp"].(float64)
				if !ok || exp-at > float64(c.MaximumExpiration) {
					deny("the token's exp exceeds maximum_expiration")
					return
				}
			}
			r.Header.Set("X-Consumer-Username", cred.consumer)
			r.Header.Set("X-Credential-Identifier", cred.key)
			r.Header.Del("X-Anonymous-Consumer")
			next.ServeHTTP(w, withIdentity(r, identity{consumer: cred.consumer, credential: cred.key}))
		})
	}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
