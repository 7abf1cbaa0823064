package edge

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testScope is a build scope without consumers or Redis.
func testScope(t *testing.T) *scope {
	t.Helper()
	pool := newRedisPool(nil, nil)
	t.Cleanup(func() { _ = pool.close() })
	return &scope{name: "test", getenv: testEnv, now: time.Now, log: slog.Default(), keyPrefix: "test:", redis: pool}
}

// Every plugin refuses, at load time, a config Kong would refuse or the
// local edge cannot honour, and names every problem at once.
func TestPluginConfigsRefuseWhatTheyCannotHonour(t *testing.T) {
	tests := []struct {
		plugin string
		config map[string]any
		want   []string
	}{
		{"correlation-id", map[string]any{"generator": "snowflake", "header_name": ""}, []string{`generator "snowflake"`, "header_name is required"}},
		{"correlation-id", map[string]any{"header": "X"}, []string{`unknown field "header"`}},
		{"request-size-limiting", map[string]any{"allowed_payload_size": 0, "size_unit": "gigabytes"}, []string{"allowed_payload_size 0", `size_unit "gigabytes"`}},
		{"jwt", map[string]any{"claims_to_verify": []any{"iat"}, "anonymous": "guest", "key_claim_name": ""},
			[]string{`claims_to_verify "iat"`, "anonymous consumers", "key_claim_name is required"}},
		{"jwt", map[string]any{"maximum_expiration": -1}, []string{"maximum_expiration -1"}},
		{"rate-limiting", map[string]any{}, []string{"at least one of second, minute, hour, day"}},
		{"rate-limiting", map[string]any{"minute": 0, "hour": -1}, []string{"minute must be positive", "hour must be positive"}},
		{"rate-limiting", map[string]any{"minute": 5, "limit_by": "header"}, []string{"needs header_name"}},
		{"rate-limiting", map[string]any{"minute": 5, "limit_by": "path"}, []string{"needs path"}},
		// Kong's schema types path as typedefs.path; such a path never
		// equals a request's normalised one, so the limit would never hold.
		{"rate-limiting", map[string]any{"minute": 5, "limit_by": "path", "path": "api/v1/orders"}, []string{`path "api/v1/orders" must start with /`}},
		{"rate-limiting", map[string]any{"minute": 5, "limit_by": "path", "path": "/api//orders"}, []string{`path "/api//orders" must not have empty segments`}},
		{"rate-limiting", map[string]any{"minute": 5, "limit_by": "consumer-group"}, []string{`limit_by "consumer-group"`}},
		{"rate-limiting", map[string]any{"minute": 5, "policy": "cluster", "error_code": 200}, []string{`policy "cluster"`, "error_code 200"}},
		{"rate-limiting", map[string]any{"minute": 5, "policy": "redis"}, []string{"needs redis.host"}},
		// A Redis password is a vault reference, never written in the file.
		{"rate-limiting", map[string]any{"minute": 5, "policy": "redis", "redis": map[string]any{"host": "redis", "password": "x"}}, []string{"must be a {vault://env/NAME} reference"}},
		{"rate-limiting", map[string]any{"minute": 5, "policy": "redis", "redis": map[string]any{"host": "redis", "password": "{vault://aws/x}"}}, []string{"only {vault://env/NAME}"}},
		{"rate-limiting", map[string]any{"minute": 5, "policy": "redis", "redis": map[string]any{"host": "redis", "ssl": true}}, []string{"redis.ssl without redis.ssl_verify"}},
		{"cors", map[string]any{"origins": []any{`https://.*\.example\.com`}, "max_age": -1}, []string{"regex origins", "max_age -1"}},
		{"opentelemetry", map[string]any{}, []string{"traces_endpoint is required"}},
		{"opentelemetry", map[string]any{"traces_endpoint": "http://jaeger:4318/v1/traces", "propagation": map[string]any{"default_format": "b3"}, "sampling_rate": 2},
			[]string{"only w3c", "sampling_rate 2"}},
		// The shop's trace starts at the edge: a file that would let Kong
		// continue the client's trace is refused.
		{"opentelemetry", map[string]any{"traces_endpoint": "http://jaeger:4318/v1/traces"}, []string{"propagation.extract must be set to []"}},
		{"opentelemetry", map[string]any{"traces_endpoint": "http://jaeger:4318/v1/traces", "header_type": "w3c",
			"propagation": map[string]any{"extract": []any{"w3c"}, "inject": []any{"preserve"}, "clear": []any{"bad header"}}},
			[]string{"header_type is deprecated", "propagation.extract [w3c]", "propagation.inject [preserve]", `propagation.clear "bad header"`}},
		{"prometheus", map[string]any{"per_consumer": "yes"}, []string{"cannot unmarshal"}},
		{"response-transformer", map[string]any{"add": map[string]any{"headers": []any{"nosniff", "Bad Name:x", "X-Empty:"}}},
			[]string{`"nosniff" is not Name:value`, `"Bad Name:x": bad header name`, `"X-Empty:" is not Name:value`}},
		{"response-transformer", map[string]any{"remove": map[string]any{"headers": []any{"Server"}}, "add": map[string]any{"json": []any{"a:b"}}},
			[]string{"remove is not implemented", "add.json is not implemented"}},
		{"response-transformer", map[string]any{"add": map[string]any{"cookies": []any{"a"}}}, []string{`unknown field "cookies"`}},
		// request-transformer implements remove.headers only.
		{"request-transformer", map[string]any{"remove": map[string]any{"headers": []any{"X-Call-Id", "Bad Name", "X-Topic:x"}}},
			[]string{`remove.headers "Bad Name" is not a header name`, `remove.headers "X-Topic:x" is not a header name`}},
		{"request-transformer", map[string]any{"add": map[string]any{"headers": []any{"X-Call-Id:edge"}}, "remove": map[string]any{"querystring": []any{"debug"}}},
			[]string{"add is not implemented by the local edge (only remove.headers is)", "remove.querystring is not implemented"}},
		{"request-transformer", map[string]any{"http_method": "POST", "remove": map[string]any{"body": []any{"a"}},
			"rename": map[string]any{"headers": []any{"A:B"}}, "replace": map[string]any{"uri": "/x"}, "append": map[string]any{"querystring": []any{"a:b"}}},
			[]string{"http_method is not implemented", "remove.body is not implemented", "rename is not implemented", "replace.uri is not implemented", "append is not implemented"}},
		{"request-transformer", map[string]any{"replace": map[string]any{"body": []any{"a:b"}}}, []string{"replace is not implemented"}},
		{"request-transformer", map[string]any{"remove": map[string]any{"cookies": []any{"a"}}}, []string{`unknown field "cookies"`}},
	}
	for _, tc := range tests {
		t.Run(tc.plugin+" "+strings.Join(tc.want, ", "), func(t *testing.T) {
			_, err := kinds()[tc.plugin].build(tc.config, testScope(t))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A config gets Kong's defaults for what the file leaves out, and keeps
// what the file sets, including a list set empty (uri_param_names: [] turns
// query tokens off).
func TestPluginConfigsDefaultToKongsAndKeepTheFilesValues(t *testing.T) {
	decodeJWT := func(raw map[string]any) JWTConfig {
		var c JWTConfig
		c.setDefaults()
		if err := decodeConfig(raw, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	want := JWTConfig{URIParamNames: []string{"jwt"}, HeaderNames: []string{"authorization"}, KeyClaimName: "iss", RunOnPreflight: true}
	if diff := cmp.Diff(want, decodeJWT(nil)); diff != "" {
		t.Errorf("jwt defaults (-want +got):\n%s", diff)
	}
	want.URIParamNames, want.ClaimsToVerify, want.RunOnPreflight = []string{}, []string{"exp"}, false
	got := decodeJWT(map[string]any{"uri_param_names": []any{}, "claims_to_verify": []any{"exp"}, "run_on_preflight": false})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jwt with the file's values (-want +got):\n%s", diff)
	}

	var rl RateLimitingConfig
	rl.setDefaults()
	wantRL := RateLimitingConfig{LimitBy: "consumer", Policy: "local", FaultTolerant: true, ErrorCode: 429,
		ErrorMessage: "API rate limit exceeded", SyncRate: -1}
	if diff := cmp.Diff(wantRL, rl); diff != "" {
		t.Errorf("rate-limiting defaults (-want +got):\n%s", diff)
	}
}

// A disabled plugin hides nothing: Kong skips disabled instances before it
// picks the most specific one of each name, so a route's disabled limit
// leaves its service's enabled one in force. Until the review of 2026-12-05
// PluginsFor picked the route's instance first and then dropped it,
// leaving the route with no limit at all.
func TestADisabledPluginLeavesTheLessSpecificOneInForce(t *testing.T) {
	decl, err := Parse([]byte(`
_format_version: "3.0"
services:
  - name: notes
    url: http://gateway:8080/function/notes
    routes:
      - name: post-note
        paths: ["~/notes$"]
        methods: [POST]
        strip_path: false
        plugins:
          - {name: rate-limiting, enabled: false, config: {minute: 1, policy: local}}
    plugins:
      - {name: rate-limiting, config: {minute: 5, policy: local}}
`))
	if err != nil {
		t.Fatal(err)
	}
	ps := decl.PluginsFor("notes", "post-note")
	if len(ps) != 1 || ps[0].Name != "rate-limiting" || ps[0].Config["minute"] != 5 {
		t.Fatalf("plugins for post-note: %+v, want the service's enabled limit of 5 a minute", ps)
	}
}
