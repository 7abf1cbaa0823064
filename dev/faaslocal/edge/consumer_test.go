package edge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

// On a route the jwt plugin guards, the upstream sees the consumer headers
// of the verified token's consumer only: Kong sets or clears each of
// X-Consumer-ID, X-Consumer-Custom-ID and X-Consumer-Username (set_consumer),
// so a client's never reaches the function. The local edge has no consumer
// ids and the file's consumer no custom_id: both are cleared. Until
// 2026-12-07 a client's X-Consumer-ID and X-Consumer-Custom-ID went through
// beside the verified X-Consumer-Username.
func TestAClientsConsumerHeadersDoNotPassTheJWTPlugin(t *testing.T) {
	now := time.Now()
	srv := policyEdge(t, &now)
	tok := token(t, jwt.SigningMethodEdDSA, testKey, jwt.MapClaims{"iss": "shop-users", "sub": "u1", "exp": now.Add(time.Hour).Unix()})
	res, b := send(t, "GET", srv.URL+"/private", map[string]string{"Authorization": "Bearer " + tok,
		"X-Consumer-ID": "forged-id", "X-Consumer-Custom-ID": "forged-custom", "X-Consumer-Username": "forged-name"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /private with a valid token: %d %s", res.StatusCode, b)
	}
	var s seen
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	got := [3]string{s.Header.Get("X-Consumer-ID"), s.Header.Get("X-Consumer-Custom-ID"), s.Header.Get("X-Consumer-Username")}
	if want := [3]string{"", "", "issuer"}; got != want {
		t.Errorf("the upstream saw X-Consumer-ID, -Custom-ID, -Username %q, want %q", got, want)
	}
}

// A consumer with a custom_id and no username is sent upstream as Kong sends
// it (set_consumer): X-Consumer-Custom-ID set, X-Consumer-Username cleared,
// a client's too. Until 2026-12-07 the local edge sent the custom_id as the
// username, a header Kong never sets for such a consumer.
func TestAConsumerWithoutAUsernameSendsNone(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(seen{Header: r.Header})
	}))
	t.Cleanup(up.Close)
	e := newEdge(t, `
_format_version: "3.0"
services:
  - name: private
    url: http://gateway:8080/function/private
    routes: [{name: private, paths: ["~/private$"], methods: [GET], strip_path: false}]
    plugins:
      - name: jwt
        config: {claims_to_verify: [exp], uri_param_names: []}
consumers:
  - custom_id: shop-users-custom
    jwt_secrets: [{key: shop-users, algorithm: EdDSA, rsa_public_key: "{vault://env/shop-jwt-verify-key}"}]
`, Options{Upstreams: map[string]string{"gateway:8080": strings.TrimPrefix(up.URL, "http://")}, Getenv: testEnv})
	t.Cleanup(func() { e.Close() })
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	tok := token(t, jwt.SigningMethodEdDSA, testKey, jwt.MapClaims{"iss": "shop-users", "sub": "u1", "exp": time.Now().Add(time.Hour).Unix()})
	res, b := send(t, "GET", srv.URL+"/private", map[string]string{"Authorization": "Bearer " + tok, "X-Consumer-Username": "forged-name"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /private with a valid token: %d %s", res.StatusCode, b)
	}
	var s seen
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	got := [3]string{s.Header.Get("X-Consumer-Custom-ID"), s.Header.Get("X-Consumer-Username"), s.Header.Get("X-Credential-Identifier")}
	if want := [3]string{"shop-users-custom", "", "shop-users"}; got != want {
		t.Errorf("the upstream saw X-Consumer-Custom-ID, -Username, X-Credential-Identifier %q, want %q", got, want)
	}
}

// limit_by consumer counts each consumer apart, as Kong counts by consumer
// id: a consumer whose username is X and another whose custom_id is X
// (Kong keeps usernames unique among usernames and custom_ids among
// custom_ids, not across the two) have a budget each. Until 2026-12-07 the
// local edge counted both as "X".
func TestAUsernameAndAnotherConsumersCustomIDCountApart(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(up.Close)
	now := time.Now()
	e := newEdge(t, `
_format_version: "3.0"
services:
  - name: private
    url: http://gateway:8080/function/private
    routes: [{name: private, paths: ["~/private$"], methods: [GET], strip_path: false}]
    plugins:
      - name: jwt
        config: {uri_param_names: []}
      - name: rate-limiting
        config: {minute: 1, limit_by: consumer, policy: local}
consumers:
  - username: X
    jwt_secrets: [{key: by-username, algorithm: HS256, secret: secret-one}]
  - custom_id: X
    jwt_secrets: [{key: by-custom-id, algorithm: HS256, secret: secret-two}]
`, Options{Upstreams: map[string]string{"gateway:8080": strings.TrimPrefix(up.URL, "http://")}, Now: func() time.Time { return now }})
	t.Cleanup(func() { e.Close() })
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	// One window (the clock stands still): each consumer's first request is
	// within its own budget of one, its second over it.
	for _, c := range []struct{ key, secret string }{{"by-username", "secret-one"}, {"by-custom-id", "secret-two"}} {
		tok := token(t, jwt.SigningMethodHS256, []byte(c.secret), jwt.MapClaims{"iss": c.key})
		for i, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
			res, b := send(t, "GET", srv.URL+"/private", map[string]string{"Authorization": "Bearer " + tok})
			if res.StatusCode != want {
				t.Errorf("request %d of the consumer keyed %s: %d %s, want %d (a budget of one of its own)", i+1, c.key, res.StatusCode, b, want)
			}
		}
	}
}

// limit_by path counts the path the client asked for, as Kong compares
// kong.request.get_path() with config.path, not the path proxied upstream
// (/function/<name>/…); any other path is counted by the client's IP, as
// Kong falls back to kong.client.get_forwarded_ip(). Until 2026-12-08 the
// local edge compared the upstream's path, so the limit never held, and let
// every other path through uncounted.
func TestLimitByPathCountsTheClientsPath(t *testing.T) {
	now := time.Now() // one window: the clock stands still
	e := newEdge(t, `
_format_version: "3.0"
services:
  - name: items
    url: http://gateway:8080/function/items
    routes: [{name: items, paths: ["/api/items"], methods: [GET], strip_path: true}]
    plugins:
      - name: rate-limiting
        config: {minute: 1, limit_by: path, path: /api/items/special, policy: local}
`, Options{Upstreams: map[string]string{"gateway:8080": strings.TrimPrefix(upstream(t).URL, "http://")}, Now: func() time.Time { return now }})
	t.Cleanup(func() { e.Close() })
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	var got []string
	for _, p := range []string{"/api/items/special", "/api/items/special", "/api/items/other", "/api/items/other"} {
		res, b := send(t, "GET", srv.URL+p, nil)
		got = append(got, fmt.Sprintf("%s %d", p, res.StatusCode))
		if res.StatusCode == http.StatusOK && string(b) != "GET /function/items"+strings.TrimPrefix(p, "/api/items") {
			t.Errorf("%s reached the upstream as %q", p, b)
		}
	}
	want := []string{
		"/api/items/special 200", "/api/items/special 429", // the path's own budget of one
		"/api/items/other 200", "/api/items/other 429", // the client IP's, apart from the path's
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("limit_by path, minute 1 (-want +got):\n%s", diff)
	}
}
