// Package kongcheck is the CI check of a Kong declarative file against the
// route table (internal/routes) and a stack file: Kong cannot run here, so
// every mistake that would only show on a real deploy — an unknown key or
// plugin, a route to a missing function, a public endpoint without a route,
// an internal function exposed, a route a browser's preflight cannot reach
// (no OPTIONS), a route that strips its path, a user route without jwt or with a jwt
// plugin that takes tokens from elsewhere than the Authorization header or
// skips their expiry, a write without a rate limit — fails a test.
package kongcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/shopfaas/shop/dev/faaslocal/edge"
	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/routes"
)

// Options parameterise the check for one pair of files.
type Options struct {
	// Function names the stack function that serves a route of the table.
	// Default: the route's own function (gateway/kong.yml with stack.yml);
	// the bundled faasd-CE stack passes func(r) string { return r.Service }.
	Function func(routes.Route) string
	// Table is the route table (default routes.Table()).
	Table []routes.Route
}

func (o *Options) setDefaults() {
	if o.Function == nil {
		o.Function = func(r routes.Route) string { return r.Function }
	}
	if o.Table == nil {
		o.Table = routes.Table()
	}
}

// Plugins is exactly the set of plugins the shop's Kong files may use: the
// ones the local edge implements, so development and production apply the
// same policy.
func Plugins() []string { return edge.Plugins() }

var serviceURL = regexp.MustCompile(`^http://gateway:8080/function/([a-z0-9][a-z0-9-]*)$`)

// Check validates kongFile against stackFile and the route table and
// returns every problem found, joined (nil when the pair is consistent).
func Check(kongFile, stackFile string, opts Options) error {
	opts.setDefaults()
	decl, err := edge.Load(kongFile) // unknown keys, format, paths
	if err != nil {
		return err
	}
	stack, err := stackfile.Load(stackFile)
	if err != nil {
		return fmt.Errorf("stack %s: %w", stackFile, err)
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// Plugins and their fields: the local edge refuses unknown ones. Vault
	// references resolve to a placeholder here: a fresh Ed25519 public key,
	// what the jwt credential's rsa_public_key must parse as (Kong's schema
	// loads it with openssl at start-up).
	_, placeholderKey, err := auth.NewKeys()
	if err != nil {
		return err
	}
	placeholder := func(string) string { return placeholderKey }
	if e, err := edge.New(decl, edge.Options{Getenv: placeholder}); err != nil {
		fail("%s: %w", kongFile, err)
	} else {
		_ = e.Close()
	}

	// What the table says each stack function serves.
	public := map[string][]routes.Route{} // function -> its public routes
	served := map[string]bool{}           // function serves some route of the table
	for _, r := range opts.Table {
		fn := opts.Function(r)
		served[fn] = true
		if r.Kind == routes.Public {
			public[fn] = append(public[fn], r)
		}
	}

	covered := map[string]bool{} // table route key -> routed
	usesJWT := false
	for _, s := range decl.Services {
		m := serviceURL.FindStringSubmatch(s.URL)
		if m == nil {
			fail("service %s: url %q is not http://gateway:8080/function/<name>", s.Name, s.URL)
			continue
		}
		fn := m[1]
		if _, ok := stack.Functions[fn]; !ok {
			fail("service %s routes to function %s, which is not in %s", s.Name, fn, stackFile)
		}
		if served[fn] && len(public[fn]) == 0 {
			fail("service %s exposes %s, which has no public route (internal, event or scheduled functions are never routed by the edge)", s.Name, fn)
			continue
		}
		for _, kr := range s.Routes {
			if kr.StripPath == nil || *kr.StripPath {
				fail("route %s: strip_path must be false (Kong's default, true, would send %s the path without the matched part, one it does not serve)", kr.Name, fn)
			}
			methods := slices.DeleteFunc(slices.Clone(kr.Methods), func(m string) bool { return m == "OPTIONS" })
			if len(methods) == 0 {
				fail("route %s: methods are required (a route without methods exposes every method of %s)", kr.Name, fn)
			} else if !slices.Contains(kr.Methods, "OPTIONS") {
				fail("route %s: methods %v lack OPTIONS: Kong matches a route before any plugin runs, so a browser's preflight of it would get Kong's 404 and the cors plugin would never answer it", kr.Name, kr.Methods)
			}
			plugins := decl.PluginsFor(s.Name, kr.Name) // enabled, route over service over global
			jwt := slices.ContainsFunc(plugins, func(p edge.Plugin) bool { return p.Name == "jwt" })
			usesJWT = usesJWT || jwt
			for _, p := range plugins {
				if p.Name == "jwt" {
					for _, e := range checkJWTConfig(p.Config) {
						fail("route %s: jwt plugin: %s", kr.Name, e)
					}
				}
			}
			if writes := slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return !isWrite(m) }); len(writes) > 0 &&
				!slices.ContainsFunc(plugins, func(p edge.Plugin) bool { return p.Name == "rate-limiting" }) {
				fail("route %s: %s is a write but has no enabled rate-limiting plugin (route, service or global): every write is rate limited at the edge (docs/edge.md)", kr.Name, strings.Join(writes, ", "))
			}
			for _, method := range methods {
				for _, path := range kr.Paths {
					i := slices.IndexFunc(public[fn], func(r routes.Route) bool {
						return r.Method == method && slices.Contains(r.KongPaths(), path)
					})
					if i < 0 {
						fail("route %s: %s %s is not a public route of the table served by %s%s", kr.Name, method, path, fn, wantPaths(public[fn], method))
						continue
					}
					r := public[fn][i]
					covered[r.Function+" "+r.Method+" "+path] = true
					if r.NeedsToken() && !jwt {
						fail("route %s: %s %s is for %s access but has no jwt plugin", kr.Name, method, r.Path, r.Access)
					}
					if !r.Idempotent && (s.Retries == nil || *s.Retries != 0) {
						fail("service %s: %s %s is not idempotent: it needs retries: 0", s.Name, method, r.Path)
					}
				}
			}
		}
	}
	for _, r := range opts.Table {
		for i, kp := range r.KongPaths() { // Path, then Also
			if !covered[r.Function+" "+r.Method+" "+kp] {
				fail("public route %s %s (%s) has no route in %s (want the path %q, methods %v)", r.Method, append([]string{r.Path}, r.Also...)[i], opts.Function(r), kongFile, kp, r.KongMethods())
			}
		}
	}
	if usesJWT {
		errs = append(errs, checkIssuer(decl))
	}
	errs = append(errs, checkRedisPasswords(decl), checkRedisTLS(decl))
	return errors.Join(errs...)
}

// checkJWTConfig returns what a jwt plugin's config leaves to Kong's
// defaults, or sets, against gateway/kong.yml's: tokens only from the
// Authorization header (uri_param_names defaults to [jwt]: a token in a query
// string, which access logs record), exp checked (nothing is checked by
// default), exp at most auth.MaxLifetime away, and the credential chosen by
// iss (checkIssuer's shop-users key).
func checkJWTConfig(raw map[string]any) []string {
	var c struct {
		URIParamNames  *[]string `json:"uri_param_names"`
		CookieNames    *[]string `json:"cookie_names"`
		HeaderNames    []string  `json:"header_names"`
		ClaimsToVerify []string  `json:"claims_to_verify"`
		MaxExpiration  float64   `json:"maximum_expiration"`
		KeyClaimName   string    `json:"key_claim_name"`
	}
	if b, err := json.Marshal(raw); err != nil || json.Unmarshal(b, &c) != nil {
		return []string{fmt.Sprintf("config %v does not decode", raw)}
	}
	var errs []string
	for _, l := range []struct {
		name, why string
		v         *[]string
	}{{"uri_param_names", "Kong's default reads ?jwt=, which access logs record", c.URIParamNames}, {"cookie_names", "a browser sends a cookie on requests it did not choose to authenticate", c.CookieNames}} {
		if l.v == nil {
			errs = append(errs, fmt.Sprintf("%s must be [] (%s), not <unset>", l.name, l.why))
		} else if len(*l.v) > 0 {
			errs = append(errs, fmt.Sprintf("%s must be [] (%s), not %v", l.name, l.why, *l.v))
		}
	}
	if len(c.HeaderNames) != 1 || !strings.EqualFold(c.HeaderNames[0], "authorization") {
		errs = append(errs, fmt.Sprintf("header_names must be [authorization], not %v", c.HeaderNames))
	}
	if !slices.Contains(c.ClaimsToVerify, "exp") {
		errs = append(errs, fmt.Sprintf("claims_to_verify must include exp (Kong checks no expiry otherwise), not %v", c.ClaimsToVerify))
	}
	if maxExp := auth.MaxLifetime.Seconds(); c.MaxExpiration < 1 || c.MaxExpiration > maxExp {
		errs = append(errs, fmt.Sprintf("maximum_expiration must be 1 to %.0f (auth.MaxLifetime; unset or 0 is no limit), not %v", maxExp, c.MaxExpiration))
	}
	if c.KeyClaimName != "iss" {
		errs = append(errs, fmt.Sprintf("key_claim_name must be iss (set explicitly), not %q", c.KeyClaimName))
	}
	return errs
}

// wantPaths says which Kong paths the table gives the routes of rs under
// method ("" when it gives none): a path is a route's Kong regex path
// (routes.Route.KongPaths, "~/api/v1/products/[^/%]+$"), never the table's
// pattern or a prefix path, which Kong would match for every longer path too.
func wantPaths(rs []routes.Route, method string) string {
	var want []string
	for _, r := range rs {
		if r.Method == method {
			want = append(want, r.KongPaths()...)
		}
	}
	if len(want) == 0 {
		return ""
	}
	return fmt.Sprintf(" (its %s paths are %s: Kong regex paths, anchored, not prefixes)", method, strings.Join(want, ", "))
}

// isWrite reports whether an HTTP method changes state: the methods whose
// routes must be rate limited at the edge.
func isWrite(method string) bool {
	switch method {
	case "POST", "PUT", "PATCH", "DELETE":
		return true
	}
	return false
}

// RedisPasswordReference is what every rate limit kept in Redis must give
// as its redis.password: Kong resolves it from SHOP_REDIS_KONG_PASSWORD,
// which docker-compose.yml exports from the redis-kong-password secret. A
// limit without it sends no AUTH to a Redis that requires one: every count
// fails, and fault_tolerant lets every request through — the limit is gone,
// silently.
const RedisPasswordReference = "{vault://env/shop-redis-kong-password}"

// RedisUsername is the Redis ACL user every rate limit kept in Redis logs in
// as (redis.username): kong, whose rules allow only the ratelimit:* keys and
// the commands of Kong's redis policy (docker-compose.yml). A limit without
// it would log in as the functions' default user with Kong's password:
// WRONGPASS, and fault_tolerant lets every request through.
const RedisUsername = "kong"

// RedisLimit is a rate-limiting plugin of a declarative file whose policy is
// redis: the limits that count in the one Redis the shop's limits share.
type RedisLimit struct {
	// Where says where in the file the plugin is attached: "plugins" (the
	// top level, scoped or not), "service NAME" or "route NAME".
	Where string
	// Redis is the plugin's redis block (host, port, password, ssl, …); nil
	// when it has none.
	Redis map[string]any
}

// RedisLimits lists every rate-limiting plugin of decl whose policy is
// redis, enabled or not, in file order: the top-level plugins, then each
// service's and its routes'. A plugin repeated through a YAML alias is
// listed at each place it appears.
func RedisLimits(decl *edge.Declarative) []RedisLimit {
	var out []RedisLimit
	add := func(where string, ps []edge.Plugin) {
		for _, p := range ps {
			if p.Name == "rate-limiting" && p.Config["policy"] == "redis" {
				redis, _ := p.Config["redis"].(map[string]any)
				out = append(out, RedisLimit{Where: where, Redis: redis})
			}
		}
	}
	add("plugins", decl.Plugins)
	for _, s := range decl.Services {
		add("service "+s.Name, s.Plugins)
		for _, r := range s.Routes {
			add("route "+r.Name, r.Plugins)
		}
	}
	return out
}

// checkRedisPasswords requires RedisUsername and RedisPasswordReference on
// every rate-limiting plugin whose policy is redis, wherever it is attached.
func checkRedisPasswords(decl *edge.Declarative) error {
	var errs []error
	for _, l := range RedisLimits(decl) {
		if l.Redis["password"] != RedisPasswordReference {
			errs = append(errs, fmt.Errorf("%s: a rate limit kept in Redis needs redis.password %s (the redis-kong-password secret), not %v",
				l.Where, RedisPasswordReference, l.Redis["password"]))
		}
		if l.Redis["username"] != RedisUsername {
			errs = append(errs, fmt.Errorf("%s: a rate limit kept in Redis needs redis.username %s (Redis's ACL user for Kong), not %v",
				l.Where, RedisUsername, l.Redis["username"]))
		}
	}
	return errors.Join(errs...)
}

// checkRedisTLS requires the rate limits kept in Redis to agree on TLS (Kong
// 3.9's redis.ssl, ssl_verify, server_name): all of them or none, since they
// share one Redis (a limit dialling plain text to a Redis that accepts only
// TLS fails every count, and fault_tolerant lets every request through), and
// TLS only with the certificate verified for a server_name (ssl without
// ssl_verify would accept whoever answers at Redis's address).
// deploy/kubernetes/kong/render-config.sh with REDIS_TLS=true sets all three
// on every block.
func checkRedisTLS(decl *edge.Declarative) error {
	var errs []error
	var plain, tls []string
	for _, l := range RedisLimits(decl) {
		if l.Redis["ssl"] != true {
			plain = append(plain, l.Where)
			continue
		}
		tls = append(tls, l.Where)
		name, _ := l.Redis["server_name"].(string)
		if l.Redis["ssl_verify"] != true || name == "" {
			errs = append(errs, fmt.Errorf("%s: a rate limit with redis.ssl needs redis.ssl_verify: true and a redis.server_name (Redis's certificate verified for its name)", l.Where))
		}
	}
	if len(plain) > 0 && len(tls) > 0 {
		errs = append(errs, fmt.Errorf("the rate limits kept in Redis disagree on TLS: redis.ssl on %s, off on %s (all or none: they share one Redis)",
			strings.Join(tls, ", "), strings.Join(plain, ", ")))
	}
	return errors.Join(errs...)
}

// checkIssuer requires the credential that verifies login-user's tokens, and
// only it: key = auth.Issuer, algorithm auth.Algorithm (EdDSA), the public
// key a vault reference (rendered from jwt-verify-key at deploy), never a
// literal, and no HMAC secret at all: the edge must hold nothing that can sign
// a token. Kong accepts a token whose iss names any credential's key, so any
// other jwt_secrets entry, whatever its key, algorithm or consumer, is refused
// (a second HS256 credential would let Kong accept tokens it can sign itself).
func checkIssuer(decl *edge.Declarative) error {
	var errs []error
	found := false
	for _, c := range decl.Consumers {
		for _, j := range c.JWTSecrets {
			if j.Key != auth.Issuer {
				errs = append(errs, fmt.Errorf("consumer %s: jwt credential %q: the only jwt credential allowed is %s's (key %q); Kong would accept tokens with iss %q", c.Username, j.Key, auth.Issuer, auth.Issuer, j.Key))
				continue
			}
			if found {
				errs = append(errs, fmt.Errorf("consumer %s: a second jwt credential with key %q", c.Username, auth.Issuer))
				continue
			}
			found = true
			if j.Algorithm != auth.Algorithm {
				errs = append(errs, fmt.Errorf("consumer %s: the %s credential must use %s, not %q", c.Username, auth.Issuer, auth.Algorithm, j.Algorithm))
			}
			if !strings.HasPrefix(j.RSAPublicKey, "{vault://env/") || !strings.HasSuffix(j.RSAPublicKey, "}") {
				errs = append(errs, fmt.Errorf("consumer %s: the %s credential's rsa_public_key must be a {vault://env/NAME} reference, not a value", c.Username, auth.Issuer))
			}
			if j.Secret != "" {
				errs = append(errs, fmt.Errorf("consumer %s: the %s credential must have no secret (EdDSA verifies with the public key only)", c.Username, auth.Issuer))
			}
		}
	}
	if !found {
		errs = append(errs, fmt.Errorf("jwt is used but no consumer has a jwt_secrets credential with key %q (internal/auth.Issuer)", auth.Issuer))
	}
	return errors.Join(errs...)
}
