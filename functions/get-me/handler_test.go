package function

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersdb"
	"github.com/shopfaas/shop/internal/users/userstest"
)

const path = "/api/v1/users/me"

func setup(t *testing.T) (http.Handler, *usersdb.Store, *auth.Verifier) {
	t.Helper()
	store := userstest.Store(t)
	tokens := fntest.Tokens(t, time.Minute)
	return New(store, tokens, slog.New(slog.DiscardHandler)), store, tokens
}

func issue(t *testing.T, tokens *auth.Verifier, id uuid.UUID, role string) string {
	t.Helper()
	return fntest.Issue(t, tokens, id, role)
}

func getMe(t *testing.T, h http.Handler, authorization string) *httptest.ResponseRecorder {
	t.Helper()
	var hdr []string
	if authorization != "" {
		hdr = []string{"Authorization", authorization}
	}
	return fntest.Do(t, h, http.MethodGet, path, "", "", hdr...)
}

func TestGetMe(t *testing.T) {
	h, store, tokens := setup(t)
	u := userstest.Register(t, store, "dan@example.com", "password-1", "Dan")
	other := userstest.Register(t, store, "other@example.com", "password-1", "Other")

	w := getMe(t, h, "Bearer "+issue(t, tokens, u.ID, users.RoleCustomer))
	got := fntest.JSON[users.User](t, w, http.StatusOK)
	if diff := cmp.Diff(u, got); diff != "" {
		t.Fatalf("user (-want +got):\n%s", diff)
	}
	// The caller is the token's subject alone: the other account's id in
	// the query and in headers is not read.
	w = fntest.Do(t, h, http.MethodGet, path+fntest.PlantedQuery(other.ID), "", "",
		append([]string{"Authorization", "Bearer " + issue(t, tokens, u.ID, users.RoleCustomer)}, fntest.PlantedHeaders(other.ID)...)...)
	if diff := cmp.Diff(u, fntest.JSON[users.User](t, w, http.StatusOK)); diff != "" {
		t.Fatalf("with another account's id planted in the query and headers (-the caller's account +got):\n%s", diff)
	}
	// Only "Bearer " and the token is read (auth.FromRequest): another
	// spelling would be a new count for the edge's per-token limits.
	w = getMe(t, h, "bearer "+issue(t, tokens, u.ID, users.RoleCustomer))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("a lower-case scheme: %d %s, want 401", w.Code, w.Body)
	}
}

func TestGetMeRefusesBadTokens(t *testing.T) {
	h, store, tokens := setup(t)
	u := userstest.Register(t, store, "erin@example.com", "password-1", "Erin")
	goneToken := issue(t, tokens, uuid.New(), users.RoleCustomer) // a subject with no account

	expired, err := fntest.Signer(t, time.Minute).WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }).Issue(u.ID, users.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, _ := auth.NewTestKeys(time.Minute)
	foreign, err := otherKey.Issue(u.ID, users.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := jwt.MapClaims{"iss": auth.Issuer, "aud": auth.Audience, "sub": u.ID.String(), "role": users.RoleCustomer,
		"iat": now.Unix(), "nbf": now.Add(-time.Second).Unix(), "exp": now.Add(time.Minute).Unix()}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// Algorithm confusion: an HMAC keyed with the public key every verifier holds.
	hs256, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(fntest.JWTVerifyKey))
	if err != nil {
		t.Fatal(err)
	}
	// One character in the middle of the signature changed to another
	// base64url character: the token still decodes strictly (only the last
	// character has spare bits), so only the signature check refuses it.
	// Until 2026-12-07 the last two characters became "xx", which strict
	// decoding refuses before any signature check.
	tampered := issue(t, tokens, u.ID, users.RoleCustomer)
	at := strings.LastIndex(tampered, ".") + (len(tampered)-strings.LastIndex(tampered, "."))/2
	swap := byte('A')
	if tampered[at] == swap {
		swap = 'B'
	}
	tampered = tampered[:at] + string(swap) + tampered[at+1:]

	for name, header := range map[string]string{
		"no header":                           "",
		"no scheme":                           issue(t, tokens, u.ID, users.RoleCustomer),
		"basic scheme":                        "Basic ZGFuOnBhc3N3b3Jk",
		"empty bearer":                        "Bearer ",
		"garbage":                             "Bearer not.a.token",
		"expired":                             "Bearer " + expired,
		"other key":                           "Bearer " + foreign,
		"alg none":                            "Bearer " + none,
		"alg HS256 keyed with the public key": "Bearer " + hs256,
		"tampered":                            "Bearer " + tampered,
		"unknown role":                        "Bearer " + issue(t, tokens, u.ID, "superuser"),
		"deleted user":                        "Bearer " + goneToken,
		"never-known user":                    "Bearer " + issue(t, tokens, uuid.New(), users.RoleCustomer),
		"admin of nobody":                     "Bearer " + issue(t, tokens, uuid.New(), users.RoleAdmin),
	} {
		t.Run(name, func(t *testing.T) {
			fntest.Problem(t, getMe(t, h, header), http.StatusUnauthorized, "unauthenticated", "erin", "gone@")
		})
	}
}

func TestGetMeOnlyServesItsRoute(t *testing.T) {
	h, _, _ := setup(t)
	fntest.Problem(t, fntest.Do(t, h, http.MethodGet, "/api/v1/users/me/x", "", ""), http.StatusNotFound, "not_found")
}

// Build reads its dependencies from the configuration, served the way
// fnserve serves it (built on first use, again after a failure): a
// jwt-verify-key that is not a PEM Ed25519 public key is refused (503), a
// proper one serves the caller.
func TestBuildWiring(t *testing.T) {
	dir := t.TempDir()
	url := pgtest.NewDatabase(t)
	h := fnhttp.NewLazy(Build, config.New(config.Env(map[string]string{"SECRETS_DIR": dir, "USERS_DATABASE_URL": url})), slog.Default())
	if err := os.WriteFile(filepath.Join(dir, "jwt-verify-key"), []byte("not-a-pem-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := fntest.Tokens(t, time.Minute)
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: url, Migrations: usersdb.Migrations(), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	u := userstest.Register(t, usersdb.New(pool), "wired@example.com", "password-1", "Wired")
	bearer := "Bearer " + issue(t, tokens, u.ID, users.RoleCustomer)
	fntest.Problem(t, getMe(t, h, bearer), http.StatusServiceUnavailable, "unavailable", "jwt")

	if err := os.WriteFile(filepath.Join(dir, "jwt-verify-key"), []byte(fntest.JWTVerifyKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := fntest.JSON[users.User](t, getMe(t, h, bearer), http.StatusOK); got.ID != u.ID {
		t.Fatalf("got user %s, want %s", got.ID, u.ID)
	}
}
