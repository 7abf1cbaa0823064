package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/openfaas/go-sdk/stack"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/auth/authtest"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// secretValues are valid values of every secret a function may declare.
var secretValues = map[string]string{
	"jwt-signing-key":                    fntest.JWTSigningKey,
	"jwt-verify-key":                     fntest.JWTVerifyKey,
	"internal-callers":                   authtest.VerifierText(),
	"internal-token-create-order":        authtest.Credential("create-order"),
	"internal-token-cancel-order":        authtest.Credential("cancel-order"),
	"internal-token-recover-orders":      authtest.Credential("recover-orders"),
	"internal-token-expire-reservations": authtest.Credential("expire-reservations"),
	"db-password-users":                  "unused-with-trust",
	"db-password-catalog":                "unused-with-trust",
	"db-password-orders":                 "unused-with-trust",
	"db-password-inventory":              "unused-with-trust",
	"db-password-payments":               "unused-with-trust",
	"db-password-catalog-reader":         "unused-with-trust",
	"db-password-inventory-reader":       "unused-with-trust",
	"meili-key":                          "meili-test-key",
	"meili-search-key":                   "meili-test-search-key",
	"redis-password":                     "unused-without-requirepass",
	"smtp-password":                      "unused-without-smtp",
	"event-verify-key":                   fntest.VerifyKey(),
}

// callerSecrets are the secrets a loader reads only when the function needs
// them, and then requires: a function must declare exactly those it reads.
// The others are optional where they are read (db-password-<service>
// without a password in the URL: TestEachFunctionHoldsItsOwnDatabasePasswordOnly
// checks those, meili-key and meili-search-key without MEILI_URL,
// smtp-password without SMTP_ADDR, redis-password without requirepass), so
// declaring one that goes unread cannot be seen here
// (TestTheMeiliKeyHoldersAreTheMeilisearchUsers checks the Meilisearch
// keys, TestTheRedisPasswordHoldersAreTheRedisUsers
// redis-password).
var callerSecrets = []string{"jwt-signing-key", "jwt-verify-key", "internal-callers", "internal-token-create-order",
	"internal-token-cancel-order", "internal-token-recover-orders", "internal-token-expire-reservations", "event-verify-key"}

// tokenIssuers are the functions that may hold jwt-signing-key, the private
// key of the access tokens: the one that checks passwords. Anyone holding
// that key can mint a token for any user and role (docs/security.md).
var tokenIssuers = []string{"login-user"}

// Only the issuers declare jwt-signing-key in stack.yml, and no compose
// service (Kong, the connectors, faasd's own) mounts it: whatever else a
// function or a service can be made to do, it cannot sign a token.
func TestOnlyTheIssuerHoldsTheSigningKey(t *testing.T) {
	s, err := stackfile.LoadEnv("../../stack.yml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var holders []string
	for _, name := range stackfile.Names(s) {
		if slices.Contains(s.Functions[name].Secrets, "jwt-signing-key") {
			holders = append(holders, name)
		}
		if slices.Contains(s.Functions[name].Secrets, "jwt-secret") {
			t.Errorf("%s still declares jwt-secret (the HMAC key is gone: jwt-verify-key or, for an issuer, jwt-signing-key)", name)
		}
	}
	if !slices.Equal(holders, tokenIssuers) {
		t.Errorf("functions declaring jwt-signing-key: %v, want exactly %v", holders, tokenIssuers)
	}
	// The faasd-CE bundle (stack.ce.yml): only the users bundle, whose
	// process serves login-user, holds it (docs/security.md names the cost).
	ce, err := stackfile.LoadEnv("../../stack.ce.yml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	holders = nil
	for _, name := range stackfile.Names(ce) {
		if slices.Contains(ce.Functions[name].Secrets, "jwt-signing-key") {
			holders = append(holders, name)
		}
	}
	if !slices.Equal(holders, []string{"users"}) {
		t.Errorf("stack.ce.yml functions declaring jwt-signing-key: %v, want exactly [users] (login-user's bundle)", holders)
	}

	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command     any `yaml:"command"`
			Environment any `yaml:"environment"`
			Volumes     []struct {
				Source string `yaml:"source"`
			} `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	if len(compose.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	for name, svc := range compose.Services {
		for _, v := range svc.Volumes {
			if path.Base(v.Source) == "jwt-signing-key" || path.Clean(v.Source) == "/var/lib/faasd/secrets" {
				t.Errorf("compose service %s mounts %s: only %v may hold the token signing key", name, v.Source, tokenIssuers)
			}
		}
		if text := fmt.Sprint(svc.Command, svc.Environment); strings.Contains(text, "jwt-signing-key") || strings.Contains(text, "jwt-secret") {
			t.Errorf("compose service %s names a token signing secret: %s", name, text)
		}
	}
}

// Every function of stack.yml builds with ONLY the secrets its entry lists
// (what faasd mounts), on the development environment and the real
// PostgreSQL and Redis: a loader reading a secret the function does not
// declare fails here, as it would on first request in a deployment. And each
// declared caller secret is needed: without it the build fails naming it.
func TestEveryFunctionBuildsWithOnlyTheSecretsItDeclares(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every function against PostgreSQL and Redis; -short was asked for")
	}
	fns, missing := devFunctions(t)
	for _, name := range missing {
		t.Errorf("%s is in stack.yml but not in the registry", name)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, f := range fns {
		name, fn, build, env := f.name, f.fn, f.build, f.env
		if err := buildWith(build, name, env, fn.Secrets, log); err != nil {
			t.Errorf("%s (secrets %v) does not build: %v", name, fn.Secrets, err)
		}
		for _, secret := range fn.Secrets {
			if !slices.Contains(callerSecrets, secret) {
				continue
			}
			without := slices.DeleteFunc(slices.Clone(fn.Secrets), func(s string) bool { return s == secret })
			if err := buildWith(build, name, env, without, log); err == nil || !strings.Contains(err.Error(), secret) {
				t.Errorf("%s declares %s but builds without it (error %v): remove it from its secrets in stack.yml",
					name, secret, err)
			}
		}
	}
}

// databaseServices are the services with a database, each owned by a role
// of its own whose password is postgres.PasswordSecret(service)
// (env/faasd/postgres-init/10-shop.sh).
var databaseServices = []string{"users", "catalog", "orders", "inventory", "payments"}

// Each function declares the database password of exactly the service
// databases it opens, those whose <SERVICE>_DATABASE_URL it requires (built
// without it, it fails naming it), and no other: with the password of
// another service's role, a compromised function could write that service's
// tables (get-stock's, the users' roles). A reader of a database
// (postgres.ReaderConfigFrom: given <SERVICE>_READER_DATABASE_URL instead,
// it no longer asks for the writers' URL) declares the readers' password,
// postgres.ReaderPasswordSecret, and not the writers': with theirs, the
// public get-stock could set any stock level. The secret is optional where it is
// read (PostgreSQL trusts local connections), so
// TestEveryFunctionBuildsWithOnlyTheSecretsItDeclares cannot see either
// mistake; the one db-password every service shared is declared by none.
func TestEachFunctionHoldsItsOwnDatabasePasswordOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every function against PostgreSQL and Redis; -short was asked for")
	}
	fns, _ := devFunctions(t) // TestEveryFunctionBuildsWithOnlyTheSecretsItDeclares reports what the registry lacks
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, f := range fns {
		var want, got []string
		for _, service := range databaseServices {
			v := strings.ToUpper(service) + "_DATABASE_URL"
			env := maps.Clone(f.env)
			delete(env, v)
			if err := buildWith(f.build, f.name, env, f.fn.Secrets, log); err == nil || !strings.Contains(err.Error(), v) {
				continue
			}
			env[postgres.ReaderURLVar(service)] = f.env[v]
			if err := buildWith(f.build, f.name, env, f.fn.Secrets, log); err == nil || !strings.Contains(err.Error(), v) {
				want = append(want, postgres.ReaderPasswordSecret(service))
			} else {
				want = append(want, postgres.PasswordSecret(service))
			}
		}
		for _, secret := range f.fn.Secrets {
			if strings.HasPrefix(secret, "db-password") {
				got = append(got, secret)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s declares the database passwords %v, want exactly %v (its service's)", f.name, got, want)
		}
	}
}

// devFunction is a function of stack.yml as the development environment
// deploys it: its entry, its Build from the registry and its environment.
type devFunction struct {
	name  string
	fn    stack.Function
	build fnhttp.Builder
	env   map[string]string
}

// devFunctions reads stack.yml with SHOP_ENV=development and the stack's
// defaults (not the caller's environment), and returns, in the stack's
// order, every function the registry holds, and the names of those it
// lacks.
func devFunctions(t *testing.T) (fns []devFunction, missing []string) {
	t.Helper()
	s, err := stackfile.LoadEnv("../../stack.yml", func(k string) string {
		if k == "SHOP_ENV" {
			return "development"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range stackfile.Names(s) {
		fn := s.Functions[name]
		build, ok := functions[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		env, err := stackfile.Environment("../..", fn)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for k, v := range env {
			if strings.HasSuffix(k, "_DATABASE_URL") {
				env[k] = closedWhenIdle(t, v)
			}
		}
		fns = append(fns, devFunction{name: name, fn: fn, build: build, env: env})
	}
	return fns, missing
}

// endBuiltSessions ends every PostgreSQL session that functions built by
// this package opened (application_name builtFunctionsApp), through the
// server of env's first database URL, if env has one.
func endBuiltSessions(env map[string]string) error {
	for k, v := range env {
		if !strings.HasSuffix(k, "_DATABASE_URL") {
			continue
		}
		u, err := url.Parse(v)
		if err != nil {
			return err
		}
		u.Path, u.RawQuery = "/postgres", ""
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			return fmt.Errorf("end the built functions' sessions: %w", err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", builtFunctionsApp)
		return err
	}
	return nil
}

// builtFunctionsApp is the application_name of every session a function
// built by this package's tests opens (closedWhenIdle).
const builtFunctionsApp = "shop-functions-test"

// closedWhenIdle is rawURL with PostgreSQL's idle_session_timeout set and
// the sessions named builtFunctionsApp: a function built here keeps its
// pools for the rest of the test process (a handler is never closed, and a
// pool keeps an idle connection 30 s), so without it the package's
// hundred-odd builds held, beside the other packages' tests, more than
// max_connections' 100. The server ends such a session after 2 s idle; a
// built handler that is called later reconnects. On a fast machine the
// tests build every function within those 2 s, one of them five times
// (a hundred-odd sessions), so buildWith also ends the sessions of each
// build (endBuiltSessions).
func closedWhenIdle(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("options", "-c idle_session_timeout=2000")
	q.Set("application_name", builtFunctionsApp)
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // a space: pgx reads "+" as itself
	return u.String()
}

// buildWith builds a function with env and only the given secrets, and
// then ends the database sessions it opened (endBuiltSessions): the handler
// is dropped unused, and some tests build every function five times.
func buildWith(build fnhttp.Builder, name string, env map[string]string, secrets []string, log *slog.Logger) error {
	err := withSecrets(name, env, secrets, nil, func(c *config.Reader) error {
		_, err := build(c, log)
		return err
	})
	if end := endBuiltSessions(env); end != nil {
		return errors.Join(err, end)
	}
	return err
}

// withSecrets calls f with the configuration of function name: env and only
// the given secrets, valued as in secretValues unless values has them.
func withSecrets(name string, env map[string]string, secrets []string, values map[string]string, f func(*config.Reader) error) error {
	dir, err := os.MkdirTemp("", "secrets-"+name)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, secret := range secrets {
		v, ok := values[secret]
		if !ok {
			v, ok = secretValues[secret]
		}
		if !ok {
			return fmt.Errorf("secret %s has no value in this test (known: %v)", secret, slices.Sorted(maps.Keys(secretValues)))
		}
		if err := os.WriteFile(filepath.Join(dir, secret), []byte(v), 0o600); err != nil {
			return err
		}
	}
	e := maps.Clone(env)
	e[config.SecretsDirEnv] = dir
	e["OPENFAAS_NAME"] = name
	e["DATABASE_MAX_CONNS"] = "1" // one connection per function's pool, 30-odd in all
	return f(config.New(config.Env(e)))
}

// fakeMeili answers what the catalog functions ask Meilisearch (the index
// settings and their task at a writer's build, a search), Meilisearch being
// a third party that cannot run here, and records each request. As
// Meilisearch with a master key does, it refuses a request without a key 401
// missing_authorization_header and one whose key is no secret's 403
// invalid_api_key.
type fakeMeili struct {
	mu     sync.Mutex
	calls  []meiliCall
	server *httptest.Server
}

// meiliCall is a request to Meilisearch: its method, path, the secret
// whose value it carried as bearer token ("" without one, "another key" for
// a value no secret has) and, for a search, its limit as sent ("" for none).
type meiliCall struct{ method, path, key, limit string }

func newFakeMeili(t *testing.T) *fakeMeili {
	m := &fakeMeili{}
	m.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := ""
		if auth := r.Header.Get("Authorization"); auth != "" {
			key = "another key"
			for name, v := range secretValues {
				if auth == "Bearer "+v {
					key = name
				}
			}
		}
		limit := ""
		if strings.HasSuffix(r.URL.Path, "/search") {
			var body map[string]json.RawMessage
			_ = json.NewDecoder(r.Body).Decode(&body)
			limit = string(body["limit"])
		}
		m.mu.Lock()
		m.calls = append(m.calls, meiliCall{r.Method, r.URL.Path, key, limit})
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case key == "":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"message":"The Authorization header is missing.","code":"missing_authorization_header","type":"auth"}`)
		case key == "another key":
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"message":"The provided API key is invalid.","code":"invalid_api_key","type":"auth"}`)
		case r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/settings"):
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"taskUid":1}`)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/tasks/"):
			_, _ = io.WriteString(w, `{"status":"succeeded"}`)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/search"):
			_, _ = io.WriteString(w, `{"hits":[],"estimatedTotalHits":0,"facetDistribution":{"category":{}}}`)
		default:
			http.Error(w, `{"message":"not in this fake"}`, http.StatusNotImplemented)
		}
	}))
	t.Cleanup(m.server.Close)
	return m
}

// take returns the requests since the last call and forgets them.
func (m *fakeMeili) take() []meiliCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	calls := m.calls
	m.calls = nil
	return calls
}

// With MEILI_URL set, exactly the functions that declare a Meilisearch key
// ask Meilisearch as they build, each with the key it declares: meili-key
// (the writers' key of the index, docs/security.md) for the index settings,
// meili-search-key for search-products' one search with limit 0 that checks
// its key (TestThePublicSearchOnlySearchesMeilisearch). One that declares a
// key without using it holds the key for nothing (list-products and
// get-product did), and one that uses Meilisearch without declaring it, or
// declares meili-key and never loads the index, leaves the index behind
// (update-product-stats never pushed a sale's counts). The keys are not read
// without MEILI_URL, so TestEveryFunctionBuildsWithOnlyTheSecretsItDeclares
// cannot see any of this.
func TestTheMeiliKeyHoldersAreTheMeilisearchUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every function against PostgreSQL and Redis; -short was asked for")
	}
	meili := newFakeMeili(t)
	fns, _ := devFunctions(t) // TestEveryFunctionBuildsWithOnlyTheSecretsItDeclares reports what the registry lacks
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var writers, searchers []string
	for _, f := range fns {
		name, fn, build, env := f.name, f.fn, f.build, f.env
		env["MEILI_URL"] = meili.server.URL
		if err := buildWith(build, name, env, fn.Secrets, log); err != nil {
			t.Errorf("%s does not build with MEILI_URL set: %v", name, err)
			continue
		}
		calls := meili.take()
		declares := slices.ContainsFunc(fn.Secrets, func(s string) bool { return s == "meili-key" || s == "meili-search-key" })
		switch {
		case declares && len(calls) == 0:
			t.Errorf("%s declares a Meilisearch key but never uses Meilisearch: remove the key from its secrets, or load the index", name)
		case len(calls) > 0 && !declares:
			t.Errorf("%s asks Meilisearch %v as it builds: declare its key in stack.yml", name, calls)
		}
		sent := map[string]bool{}
		for _, c := range calls {
			sent[c.key] = true
			if !slices.Contains(fn.Secrets, c.key) || !strings.HasPrefix(c.key, "meili-") {
				t.Errorf("%s sends %s %s with the key %q, not a Meilisearch key it declares", name, c.method, c.path, c.key)
			}
		}
		for _, key := range []string{"meili-key", "meili-search-key"} {
			if slices.Contains(fn.Secrets, key) && len(calls) > 0 && !sent[key] {
				t.Errorf("%s declares %s but asks Meilisearch %v as it builds, never with it", name, key, calls)
			}
		}
		if sent["meili-key"] {
			writers = append(writers, name)
		}
		if slices.Contains(fn.Secrets, "meili-search-key") {
			searchers = append(searchers, name)
		}
	}
	// The writes and the two event handlers that change what the index
	// holds; the search holds the other key.
	want := []string{"archive-product", "create-product", "index-product", "update-product", "update-product-stats"}
	if !slices.Equal(writers, want) {
		t.Errorf("functions that write to Meilisearch: %v, want %v", writers, want)
	}
	if !slices.Equal(searchers, []string{"search-products"}) {
		t.Errorf("functions that declare meili-search-key: %v, want [search-products]", searchers)
	}
}

// search-products answers anyone, unauthenticated, so it holds the least a
// Meilisearch key can do: meili-search-key, an API key that may only search
// the products index, never meili-key (the writers' key, which can replace
// or delete every document and change the settings) nor the master key
// (which also makes keys); and it asks Meilisearch nothing but searches: as
// it builds, one with limit 0 that checks its key (a wrong key fails the
// build: TestAWrongSearchKeyFailsSearchProductsBuild), never the index
// settings (a writer's to apply), and one per request. Until 2026-12-05 it
// declared meili-key, the master key on faasd, and applied the settings with
// it at every build.
func TestThePublicSearchOnlySearchesMeilisearch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds search-products against PostgreSQL; -short was asked for")
	}
	meili := newFakeMeili(t)
	f := searchProducts(t)
	if slices.Contains(f.fn.Secrets, "meili-key") || !slices.Contains(f.fn.Secrets, "meili-search-key") {
		t.Errorf("search-products declares %v: want meili-search-key and not meili-key", f.fn.Secrets)
	}
	f.env["MEILI_URL"] = meili.server.URL
	var building []meiliCall
	err := withSecrets(f.name, f.env, f.fn.Secrets, nil, func(c *config.Reader) error {
		h, err := f.build(c, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		building = meili.take()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/search/products?q=lamp&sort=price_asc", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("search: %d %s, want 200", rec.Code, rec.Body)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := []meiliCall{{http.MethodPost, "/indexes/products/search", "meili-search-key", "0"}}
	if !slices.Equal(building, check) {
		t.Errorf("search-products asks Meilisearch %v as it builds, want only %v", building, check)
	}
	want := []meiliCall{{http.MethodPost, "/indexes/products/search", "meili-search-key", "20"}}
	if got := meili.take(); !slices.Equal(got, want) {
		t.Errorf("a search asks Meilisearch %v, want only %v", got, want)
	}
}

// search-products' build fails when Meilisearch refuses its key (403
// invalid_api_key: a wrong meili-search-key) or the secret is missing, with
// an error naming the secret and never the key's value: until 2026-12-05 it
// sent nothing as it built, so it built, /_/ready answered 200 and a rollout
// went on while every search answered 503. A Meilisearch that cannot be
// reached does not fail it.
func TestAWrongSearchKeyFailsSearchProductsBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds search-products against PostgreSQL; -short was asked for")
	}
	meili := newFakeMeili(t)
	f := searchProducts(t)
	f.env["MEILI_URL"] = meili.server.URL
	const wrong = "aWrongSearchKeyValue"
	for _, tt := range []struct {
		name    string
		secrets []string
		values  map[string]string
	}{
		{"wrong key", f.fn.Secrets, map[string]string{"meili-search-key": wrong}},
		{"no secret", slices.DeleteFunc(slices.Clone(f.fn.Secrets), func(s string) bool { return s == "meili-search-key" }), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := withSecrets(f.name, f.env, tt.secrets, tt.values, func(c *config.Reader) error {
				_, err := f.build(c, slog.New(slog.DiscardHandler))
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "meili-search-key") || strings.Contains(err.Error(), wrong) {
				t.Errorf("build = %v, want an error naming meili-search-key and not the key", err)
			}
			meili.take()
		})
	}
	// A Meilisearch that cannot be reached does not fail the build, as an
	// unreachable Redis does not (redisconn.Open): the searches meet the
	// outage as they come (503).
	f.env["MEILI_URL"] = "http://127.0.0.1:1"
	if err := buildWith(f.build, f.name, f.env, f.fn.Secrets, slog.New(slog.DiscardHandler)); err != nil {
		t.Errorf("build with Meilisearch unreachable = %v, want it built", err)
	}
}

// Exactly the functions that use Redis declare redis-password: every Redis
// client reads REDIS_ADDR and the secret together (redisconn.ConfigFrom), so
// a function whose build needs REDIS_ADDR uses Redis. One that uses Redis
// without declaring the secret would connect without the password on a
// deployment whose Redis requires it (every cart call NOAUTH, the cache
// always missing), and the secret being optional, nothing else sees it; one
// that declares it without using Redis holds a password for nothing.
func TestTheRedisPasswordHoldersAreTheRedisUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every function against PostgreSQL; -short was asked for")
	}
	fns, _ := devFunctions(t) // TestEveryFunctionBuildsWithOnlyTheSecretsItDeclares reports what the registry lacks
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var users []string
	for _, f := range fns {
		name, fn, build, env := f.name, f.fn, f.build, f.env
		delete(env, "REDIS_ADDR")
		err := buildWith(build, name, env, fn.Secrets, log)
		usesRedis := err != nil && strings.Contains(err.Error(), "REDIS_ADDR is required")
		declares := slices.Contains(fn.Secrets, "redis-password")
		switch {
		case usesRedis && !declares:
			t.Errorf("%s uses Redis (REDIS_ADDR) but does not declare redis-password in stack.yml", name)
		case declares && !usesRedis:
			t.Errorf("%s declares redis-password but never reads REDIS_ADDR (build without it: %v): remove the secret", name, err)
		}
		if usesRedis {
			users = append(users, name)
		}
	}
	// The cart functions, the checkout's saga (carts and the checkout
	// limit), login-user (its per-account limit) and the catalog functions
	// that read or invalidate the product cache.
	want := []string{"archive-product", "cancel-order", "clear-cart", "create-order", "create-product", "get-cart",
		"get-product", "index-product", "login-user", "recover-orders", "set-cart-item", "update-product",
		"update-product-stats"}
	slices.Sort(users)
	if !slices.Equal(users, want) {
		t.Errorf("functions that use Redis: %v, want %v", users, want)
	}
}

// cacheOnly are the Redis users whose only use of Redis is the product
// cache, an optimisation: the catalog functions.
var cacheOnly = []string{"archive-product", "create-product", "get-product", "index-product", "update-product",
	"update-product-stats"}

// A function that needs Redis checks its login once as it builds: while
// Redis refuses it (a wrong redis-password secret), or Redis's certificate
// fails verification (REDIS_TLS=true with a wrong redis-ca), the build fails, so
// /_/ready answers 503 and the function is taken out of rotation, its log
// naming the secret and never the password, where it was ready and failed
// or skipped every Redis call instead: the carts, the checkout's saga and
// login-user. A function whose only use of Redis is the product cache stays
// ready and serves from PostgreSQL (get-product answers 200), each cache
// call logged at error naming the secret: the cache is an optimisation, and
// a refused login or certificate on it must not take the catalog out of
// rotation. A Redis
// that cannot be reached fails no build (the limits fail open, the cache
// misses); the right password builds.
func TestAFunctionIsNotReadyWhileRedisRefusesItsLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Redis users against PostgreSQL and a redis-server of their own; -short was asked for")
	}
	const password = "readyTestPassword"
	addr := redisconntest.Server(t, password)
	tlsAddr, ca := redisconntest.TLSServer(t, password)
	pool := pgtest.Open(t, catalogdb.Migrations())
	product, err := catalog.NewProduct(catalog.Draft{SKU: "READY-1", Name: "Ready", Description: "About ready",
		Category: "tests", Price: catalog.Money{Amount: 100, Currency: "USD"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if product, err = catalogdb.New(pool).Create(context.Background(), product); err != nil {
		t.Fatal(err)
	}
	fns, _ := devFunctions(t) // TestEveryFunctionBuildsWithOnlyTheSecretsItDeclares reports what the registry lacks
	for _, f := range fns {
		if !slices.Contains(f.fn.Secrets, "redis-password") {
			continue // TestTheRedisPasswordHoldersAreTheRedisUsers: exactly the Redis users declare it
		}
		cacheOnly := slices.Contains(cacheOnly, f.name)
		for _, tt := range []struct {
			name, addr, secret string
			ca                 []byte // with REDIS_TLS=true, the redis-ca secret
			ready              bool
		}{
			{"wrong password", addr, "wrongPassword", nil, cacheOnly},
			{"Redis down", "127.0.0.1:1", password, nil, true},
			{"right password", addr, password, nil, true},
			// A certificate that fails verification fails the build as a
			// refused login does (redisconn.Open).
			{"wrong CA", tlsAddr, password, redisconntest.CA(t), cacheOnly},
			{"right CA", tlsAddr, password, ca, true},
		} {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				env := maps.Clone(f.env)
				env["REDIS_ADDR"] = tt.addr
				if cacheOnly {
					env["CATALOG_DATABASE_URL"] = closedWhenIdle(t, pool.Config().ConnString())
				}
				secrets, values := f.fn.Secrets, map[string]string{"redis-password": tt.secret}
				if tt.ca != nil {
					env["REDIS_TLS"] = "true"
					secrets, values["redis-ca"] = append(slices.Clone(secrets), "redis-ca"), string(tt.ca)
				}
				var logged bytes.Buffer
				err := withSecrets(f.name, env, secrets, values, func(c *config.Reader) error {
					lazy := fnhttp.NewLazy(f.build, c, slog.New(slog.NewTextHandler(&logged, nil)))
					if err := lazy.Ready(context.Background()); err != nil || f.name != "get-product" {
						return err
					}
					rec := httptest.NewRecorder()
					lazy.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/products/"+product.ID.String(), nil))
					if rec.Code != http.StatusOK {
						t.Errorf("GET the product: %d %s, want 200 from the database", rec.Code, rec.Body)
					}
					return nil
				})
				if ready := err == nil; ready != tt.ready {
					t.Fatalf("Ready = %v, want ready %v; logged:\n%s", err, tt.ready, logged.String())
				}
				if tt.name == "wrong password" && (!tt.ready || f.name == "get-product") &&
					(!strings.Contains(logged.String(), "redis-password") || strings.Contains(logged.String(), tt.secret)) {
					t.Errorf("logged %q: want the redis-password secret named and the password not", logged.String())
				}
				if tt.name == "wrong password" && f.name == "get-product" && !strings.Contains(logged.String(), "level=ERROR") {
					t.Errorf("logged %q: want the refused cache logged at error", logged.String())
				}
				if tt.name == "wrong CA" && (!tt.ready || f.name == "get-product") &&
					(!strings.Contains(logged.String(), "redis-ca") || strings.Contains(logged.String(), password)) {
					t.Errorf("logged %q: want the redis-ca secret named and the password not", logged.String())
				}
			})
		}
	}
}

// A build that fails after it opened its Redis client closes it: fnhttp.Lazy
// retries a failed build on every request and readiness probe (every 2 s
// per replica while, say, the catalog database is missing), and each
// failure left one connection open (about 1,800 an hour per replica, until
// Redis's maxclients refuses everyone). Each Redis user's build is failed
// after its Redis client opened, three times, and the Redis server then has
// no more clients than before. clear-cart and login-user cannot fail once
// their client is open (Redis is the last thing they build). Nor can the six
// catalog functions leave one open: their only Redis client is the product
// cache's, which opens no connection as it builds (cache.New does not check
// its login, and its pool keeps no idle connection: internal/cache
// TestNewOpensNoConnection), only on its first call, and catalogenv.Load
// calls nothing on the cache before the steps that may fail: were that to
// change, this test would not see it.
func TestAFailedBuildLeavesNoRedisConnectionOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Redis users against PostgreSQL and a redis-server of their own; -short was asked for")
	}
	// The runtime closes a connection nothing references when a garbage
	// collection finalizes it, which in an idle replica is every 2 minutes
	// (the forced collection), so a leak is bounded there; and in a test a
	// collection may come at any time. Off, the test sees what the code
	// closes, not what the collector did.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const password = "leakTestPassword"
	addr := redisconntest.Server(t, password)
	breakPricing := map[string]string{"GATEWAY_URL": "gateway:8080"}              // catalogclient.New fails after the carts' client
	breakSaga := map[string]string{"RECOVER_AFTER": "10s", "SAGA_TIMEOUT": "20s"} // saga.New fails after the carts' client
	breaks := map[string]map[string]string{
		"get-cart": breakPricing, "set-cart-item": breakPricing,
		"create-order": breakSaga, "cancel-order": breakSaga, "recover-orders": breakSaga,
		"clear-cart": nil, "login-user": nil,
		// The cache opens no connection as it builds (above).
		"archive-product": nil, "create-product": nil, "get-product": nil,
		"index-product": nil, "update-product": nil, "update-product-stats": nil,
	}
	log := slog.New(slog.DiscardHandler)
	fns, _ := devFunctions(t) // TestEveryFunctionBuildsWithOnlyTheSecretsItDeclares reports what the registry lacks
	for _, f := range fns {
		if !slices.Contains(f.fn.Secrets, "redis-password") {
			continue // TestTheRedisPasswordHoldersAreTheRedisUsers: exactly the Redis users declare it
		}
		broken, known := breaks[f.name]
		if !known {
			t.Errorf("%s uses Redis: say in this test how its build fails after its Redis client opened, or that it cannot", f.name)
		}
		if broken == nil {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			env := maps.Clone(f.env)
			env["REDIS_ADDR"] = addr
			env["DATABASE_CREATE"] = "false"
			maps.Copy(env, broken)
			before := redisconntest.Clients(t, addr, password)
			for range 3 {
				if err := withSecrets(f.name, env, f.fn.Secrets, map[string]string{"redis-password": password}, func(c *config.Reader) error {
					_, err := f.build(c, log)
					return err
				}); err == nil {
					t.Fatalf("%s built with %v: the test's break no longer fails it", f.name, broken)
				}
			}
			// A closed client's connection leaves the server's list soon
			// after, not at once.
			after := redisconntest.Clients(t, addr, password)
			for deadline := time.Now().Add(2 * time.Second); after > before && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				after = redisconntest.Clients(t, addr, password)
			}
			if after > before {
				t.Errorf("Redis has %d clients after three failed builds, %d before: each left its client open", after, before)
			}
		})
	}
}

// searchProducts is search-products as stack.yml and the development
// environment declare it.
func searchProducts(t *testing.T) devFunction {
	t.Helper()
	fns, _ := devFunctions(t)
	i := slices.IndexFunc(fns, func(f devFunction) bool { return f.name == "search-products" })
	if i < 0 {
		t.Fatal("search-products is not in stack.yml")
	}
	return fns[i]
}
