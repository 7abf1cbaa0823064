package kongcheck_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/dev/kongcheck"
	"github.com/shopfaas/shop/internal/routes"
)

// table is the fixtures' route table.
func table() []routes.Route {
	return []routes.Route{
		{Function: "hello", Service: "greet", Kind: routes.Public, Method: "GET", Path: "/api/v1/hello", Also: []string{"/hello.txt"}, Access: routes.Anyone, Idempotent: true},
		{Function: "me", Service: "greet", Kind: routes.Public, Method: "GET", Path: "/api/v1/me", Access: routes.User, Idempotent: true},
		{Function: "post-note", Service: "notes", Kind: routes.Public, Method: "POST", Path: "/api/v1/notes", Access: routes.User},
		{Function: "secret-fn", Service: "notes", Kind: routes.Internal},
	}
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// write stores a variant of a fixture and returns its path.
func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// withPlugins is kong with plugins (YAML list items) added to its global
// plugins, before the correlation-id plugin.
func withPlugins(kong, plugins string) string {
	return strings.Replace(kong, "  - name: correlation-id\n", plugins+"  - name: correlation-id\n", 1)
}

func TestProjectFilesPass(t *testing.T) {
	if err := kongcheck.Check("../../gateway/kong.yml", "../../stack.yml", kongcheck.Options{}); err != nil {
		t.Error(err)
	}
}

// The bundled faasd-CE pair: one function per service serves its routes.
func TestBundledFilesPass(t *testing.T) {
	bySvc := kongcheck.Options{Function: func(r routes.Route) string { return r.Service }}
	if err := kongcheck.Check("../../gateway/kong.ce.yml", "../../stack.ce.yml", bySvc); err != nil {
		t.Error(err)
	}
}

func TestFixturePasses(t *testing.T) {
	if err := kongcheck.Check("testdata/kong.yml", "testdata/stack.yml", kongcheck.Options{Table: table()}); err != nil {
		t.Error(err)
	}
}

// jwtConfig is the fixture's jwt plugin config, as gateway/kong.yml sets it.
const jwtConfig = "config: {key_claim_name: iss, claims_to_verify: [exp], maximum_expiration: 86400, header_names: [authorization], uri_param_names: [], cookie_names: []}"

// jwtWith is kong with its first jwt plugin's (service me's) config setting
// old replaced by new.
func jwtWith(kong, old, new string) string {
	return strings.Replace(kong, jwtConfig, strings.Replace(jwtConfig, old, new, 1), 1)
}

// Each mistake is caught, with a message naming it.
func TestEachMistakeFails(t *testing.T) {
	kong, stack := fixture(t, "kong.yml"), fixture(t, "stack.yml")
	secretService := `
  - name: secret-fn
    url: http://gateway:8080/function/secret-fn
    routes: [{name: secret-fn, paths: ["~/api/v1/secret$"], methods: [POST], strip_path: false}]
plugins:`
	tests := []struct {
		name        string
		kong, stack string
		want        string
	}{
		{"unknown top-level key", "upstreams: []\n" + kong, stack, "field upstreams not found"},
		{"unknown service field", strings.Replace(kong, "    retries: 0", "    retries: 0\n    retry: 1", 1), stack, "field retry not found"},
		{"unknown route field", strings.Replace(kong, "        strip_path: false", "        strip_path: false\n        hosts: [a.example]", 1), stack, "field hosts not found"},
		{"unknown plugin field", strings.Replace(kong, "echo_downstream: true", "echo_downstream: true, echo: true", 1), stack, "unknown field"},
		{"unknown plugin", strings.Replace(kong, "  - name: correlation-id", "  - name: key-auth\n  - name: correlation-id", 1), stack, `plugin "key-auth"`},
		{"route to a function missing from the stack", kong, strings.Replace(stack, "  hello:", "  hallo:", 1), "hello, which is not in"},
		{"public function without a route", strings.Replace(kong, `"~/api/v1/hello$"`, `"~/api/v1/hallo$"`, 1), stack, "public route GET /api/v1/hello (hello) has no route"},
		{"further path of a public route without a route", strings.Replace(kong, `, "~/hello\\.txt$"`, "", 1), stack, "public route GET /hello.txt (hello) has no route"},
		{"further path unescaped", strings.Replace(kong, `"~/hello\\.txt$"`, `"~/hello.txt$"`, 1), stack, "GET ~/hello.txt$ is not a public route"},
		{"internal function reachable", strings.Replace(kong, "\nplugins:", secretService, 1), stack, "exposes secret-fn, which has no public route"},
		// The table's path as a prefix path, as Kong documents paths: the
		// message names the regex path the table wants (a newcomer could not
		// tell from "is not a public route" alone).
		{"public path written as a prefix path", strings.Replace(kong, `"~/api/v1/me$"`, `"/api/v1/me"`, 1), stack,
			"GET /api/v1/me is not a public route of the table served by me (its GET paths are ~/api/v1/me$: Kong regex paths, anchored, not prefixes)"},
		{"public route without a route names the path it wants", strings.Replace(kong, `"~/api/v1/me$"`, `"/api/v1/me"`, 1), stack,
			`(want the path "~/api/v1/me$", methods [GET OPTIONS])`},
		{"internal path on a public function", strings.Replace(kong, `"~/api/v1/hello$"`, `"~/api/v1/hello$", "/api/v1/"`, 1), stack, "GET /api/v1/ is not a public route"},
		// Kong's strip_path defaults to true: the function would be sent
		// the path with the matched part removed, one it does not serve.
		{"route stripping its path", strings.Replace(kong, "        strip_path: false\n", "        strip_path: true\n", 1), stack,
			"route hello: strip_path must be false"},
		{"route leaving strip_path to Kong's default (true)", strings.Replace(kong, "        strip_path: false\n", "", 1), stack,
			"route hello: strip_path must be false"},
		{"route without methods", strings.Replace(kong, "        methods: [GET, OPTIONS]\n", "", 1), stack, "methods are required"},
		// Kong matches a route before any plugin runs: a browser's preflight
		// of a route without OPTIONS gets Kong's 404, never the cors plugin.
		{"route without OPTIONS", strings.Replace(kong, "        methods: [GET, OPTIONS]\n", "        methods: [GET]\n", 1), stack,
			"route hello: methods [GET] lack OPTIONS"},
		{"service url", strings.Replace(kong, "url: http://gateway:8080/function/hello", "url: http://127.0.0.1:8080/function/hello", 1), stack, "is not http://gateway:8080/function/<name>"},
		{"user route without jwt (service plugin removed)", strings.Replace(kong, "    plugins:\n      - name: jwt\n        "+jwtConfig+"\n", "", 1), stack, "/api/v1/me is for user access but has no jwt"},
		{"user route without jwt (top-level plugin removed)", strings.Replace(kong, "  - name: jwt\n    route: post-note\n    "+jwtConfig+"\n", "", 1), stack, "/api/v1/notes is for user access but has no jwt"},
		{"jwt for grpc only", strings.Replace(kong, "    route: post-note\n", "    route: post-note\n    protocols: [grpc, grpcs]\n", 1), stack, "protocols [grpc grpcs] must include http and https"},
		{"jwt disabled", strings.Replace(kong, "    route: post-note\n", "    route: post-note\n    enabled: false\n", 1), stack, "has no jwt"},
		// Kong's defaults read a token from ?jwt= (which access logs record),
		// and check no claim: each jwt plugin must set what gateway/kong.yml does.
		{"jwt reads ?jwt= by default", jwtWith(kong, ", uri_param_names: []", ""), stack, "route me: jwt plugin: uri_param_names must be [] (Kong's default reads ?jwt=, which access logs record), not <unset>"},
		{"jwt reads ?token=", jwtWith(kong, "uri_param_names: []", "uri_param_names: [token]"), stack, "uri_param_names must be []"},
		{"global jwt reads ?jwt= by default", strings.Replace(kong, "route: post-note\n    "+jwtConfig, "route: post-note\n    "+strings.Replace(jwtConfig, ", uri_param_names: []", "", 1), 1), stack, "route post-note: jwt plugin: uri_param_names must be []"},
		{"jwt reads a cookie", jwtWith(kong, "cookie_names: []", "cookie_names: [session]"), stack, "route me: jwt plugin: cookie_names must be []"},
		{"jwt cookie_names unset", jwtWith(kong, ", cookie_names: []", ""), stack, "route me: jwt plugin: cookie_names must be []"},
		{"jwt reads another header", jwtWith(kong, "header_names: [authorization]", "header_names: [authorization, x-token]"), stack, "route me: jwt plugin: header_names must be [authorization]"},
		{"jwt header_names unset", jwtWith(kong, " header_names: [authorization],", ""), stack, "route me: jwt plugin: header_names must be [authorization]"},
		{"jwt checks no expiry", jwtWith(kong, "claims_to_verify: [exp]", "claims_to_verify: [nbf]"), stack, "route me: jwt plugin: claims_to_verify must include exp"},
		{"jwt claims_to_verify unset", jwtWith(kong, " claims_to_verify: [exp],", ""), stack, "route me: jwt plugin: claims_to_verify must include exp"},
		{"jwt without maximum_expiration", jwtWith(kong, " maximum_expiration: 86400,", ""), stack, "route me: jwt plugin: maximum_expiration must be 1 to 86400"},
		{"jwt maximum_expiration above auth.MaxLifetime", jwtWith(kong, "maximum_expiration: 86400", "maximum_expiration: 604800"), stack, "maximum_expiration must be 1 to 86400"},
		{"jwt maximum_expiration 0 (no limit)", jwtWith(kong, "maximum_expiration: 86400", "maximum_expiration: 0"), stack, "maximum_expiration must be 1 to 86400"},
		{"jwt key claim other than iss", jwtWith(kong, "key_claim_name: iss", "key_claim_name: kid"), stack, "route me: jwt plugin: key_claim_name must be iss"},
		{"retries on a non-idempotent route", strings.Replace(kong, "    retries: 0\n", "", 1), stack, "needs retries: 0"},
		{"literal jwt public key", strings.Replace(kong, `"{vault://env/shop-jwt-verify-key}"`, `"-----BEGIN PUBLIC KEY-----"`, 1), stack, "must be a {vault://env/NAME} reference"},
		{"HS256 credential", strings.Replace(kong, "algorithm: EdDSA\n        rsa_public_key: \"{vault://env/shop-jwt-verify-key}\"", "algorithm: HS256\n        secret: \"{vault://env/shop-jwt-secret}\"", 1), stack, "must use EdDSA, not \"HS256\""},
		{"an HMAC secret beside the public key", strings.Replace(kong, "algorithm: EdDSA\n", "algorithm: EdDSA\n        secret: \"{vault://env/shop-jwt-secret}\"\n", 1), stack, "must have no secret"},
		{"a redis rate limit without the password", withPlugins(kong,
			"  - name: rate-limiting\n    config: {minute: 5, policy: redis, redis: {host: redis, port: 6379}}\n"), stack,
			"needs redis.password {vault://env/shop-redis-kong-password}"},
		{"a redis rate limit logging in as the default user", withPlugins(kong,
			"  - name: rate-limiting\n    config: {minute: 5, policy: redis, redis: {host: redis, port: 6379, password: \"{vault://env/shop-redis-kong-password}\"}}\n"), stack,
			"needs redis.username kong"},
		{"a redis rate limit with the functions' password", withPlugins(kong,
			"  - name: rate-limiting\n    config: {minute: 5, policy: redis, redis: {host: redis, port: 6379, username: kong, password: \"{vault://env/shop-redis-password}\"}}\n"), stack,
			"needs redis.password {vault://env/shop-redis-kong-password}"},
		{"a redis rate limit with TLS unverified", withPlugins(kong,
			"  - name: rate-limiting\n    config: {minute: 5, policy: redis, redis: {host: redis, port: 6379, username: kong, password: \"{vault://env/shop-redis-kong-password}\", ssl: true, server_name: redis}}\n"), stack,
			"needs redis.ssl_verify: true and a redis.server_name"},
		{"a redis rate limit with TLS and no server name", withPlugins(kong,
			"  - name: rate-limiting\n    config: {minute: 5, policy: redis, redis: {host: redis, port: 6379, username: kong, password: \"{vault://env/shop-redis-kong-password}\", ssl: true, ssl_verify: true}}\n"), stack,
			"needs redis.ssl_verify: true and a redis.server_name"},
		{"redis rate limits disagreeing on TLS", withPlugins(kong,
			"  - name: rate-limiting\n    config: {minute: 5, policy: redis, redis: {host: redis, port: 6379, username: kong, password: \"{vault://env/shop-redis-kong-password}\", ssl: true, ssl_verify: true, server_name: redis}}\n"+
				"  - name: rate-limiting\n    service: me\n    config: {minute: 5, policy: redis, redis: {host: redis, port: 6379, username: kong, password: \"{vault://env/shop-redis-kong-password}\"}}\n"), stack,
			"disagree on TLS: redis.ssl on plugins, off on plugins"},
		{"a write without a rate limit", strings.Replace(kong, "    plugins:\n      - name: rate-limiting\n        config: {minute: 30, limit_by: header, header_name: Authorization, policy: local}\n", "", 1), stack,
			"route post-note: POST is a write but has no enabled rate-limiting plugin"},
		{"a write whose rate limit is disabled", strings.Replace(kong, "      - name: rate-limiting\n", "      - name: rate-limiting\n        enabled: false\n", 1), stack,
			"route post-note: POST is a write but has no enabled rate-limiting plugin"},
		{"no issuer credential", strings.Replace(kong, "key: shop-users", "key: someone-else", 1), stack, `key "shop-users"`},
		// Kong accepts a token whose iss names any credential's key: a second
		// credential beside the issuer's, whatever its key, would verify
		// tokens the shop never signed (an HMAC one lets the edge sign).
		{"a second HS256 credential", strings.Replace(kong, "        rsa_public_key: \"{vault://env/shop-jwt-verify-key}\"\n",
			"        rsa_public_key: \"{vault://env/shop-jwt-verify-key}\"\n      - key: legacy\n        algorithm: HS256\n        secret: \"{vault://env/shop-jwt-legacy}\"\n", 1), stack,
			`credential "legacy"`},
		{"a second consumer's EdDSA credential", kong + "  - username: partner\n    jwt_secrets:\n      - key: partner\n        algorithm: EdDSA\n        rsa_public_key: \"{vault://env/partner-key}\"\n", stack,
			`credential "partner"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.kong == kong && tc.stack == stack {
				t.Fatal("the fixture was not changed")
			}
			err := kongcheck.Check(write(t, "kong.yml", tc.kong), write(t, "stack.yml", tc.stack), kongcheck.Options{Table: table()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// The bundled stack's mapping: one function per service serves its routes.
func TestFunctionMapping(t *testing.T) {
	kong := fixture(t, "kong.yml")
	for _, fn := range []string{"hello", "me"} {
		kong = strings.ReplaceAll(kong, "function/"+fn+"\n", "function/greet\n")
	}
	kong = strings.ReplaceAll(kong, "function/post-note\n", "function/notes\n")
	stack := strings.NewReplacer("  hello:", "  greet:", "  post-note:", "  notes:").Replace(fixture(t, "stack.yml"))
	bySvc := kongcheck.Options{Table: table(), Function: func(r routes.Route) string { return r.Service }}
	if err := kongcheck.Check(write(t, "kong.yml", kong), write(t, "stack.yml", stack), bySvc); err != nil {
		t.Errorf("bundled files: %v", err)
	}
	// Per-function mapping on the bundled files fails.
	if err := kongcheck.Check(write(t, "kong.yml", kong), write(t, "stack.yml", stack), kongcheck.Options{Table: table()}); err == nil {
		t.Error("per-function mapping accepted bundled files")
	}
}

func TestPlugins(t *testing.T) {
	want := "correlation-id cors jwt opentelemetry prometheus rate-limiting request-size-limiting request-transformer response-transformer"
	if got := strings.Join(kongcheck.Plugins(), " "); got != want {
		t.Errorf("plugins %s, want %s", got, want)
	}
}
