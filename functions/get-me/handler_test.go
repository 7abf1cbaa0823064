package function

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

func setup(t *testing.T) (http.Handler, *usersdb.Store, *auth.Tokens) {
	t.Helper()
	store := userstest.Store(t)
	tokens, err := auth.NewTokens(userstest.JWTKey, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return New(store, tokens, slog.New(slog.DiscardHandler)), store, tokens
}

func issue(t *testing.T, tokens *auth.Tokens, id uuid.UUID, role string) string {
	t.Helper()
	tok, err := tokens.Issue(id, role)
	if err != nil {
		t.Fatal(err)
	}
	return tok
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
	userstest.Register(t, store, "other@example.com", "password-1", "Other")

	w := getMe(t, h, "Bearer "+issue(t, tokens, u.ID, users.RoleCustomer))
	got := fntest.JSON[users.User](t, w, http.StatusOK)
	if diff := cmp.Diff(u, got); diff != "" {
		t.Fatalf("user (-want +got):\n%s", diff)
	}
	// The scheme is case-insensitive.
	w = getMe(t, h, "bearer "+issue(t, tokens, u.ID, users.RoleCustomer))
	if got := fntest.JSON[users.User](t, w, http.StatusOK); got.ID != u.ID {
		t.Fatalf("got user %s, want %s", got.ID, u.ID)
	}
}

func TestGetMeRefusesBadTokens(t *testing.T) {
	h, store, tokens := setup(t)
	u := userstest.Register(t, store, "erin@example.com", "password-1", "Erin")
	gone := userstest.Register(t, store, "gone@example.com", "password-1", "Gone")
	goneToken := issue(t, tokens, gone.ID, users.RoleCustomer)
	if err := store.Delete(context.Background(), gone.ID); err != nil {
		t.Fatal(err)
	}

	expired := issue(t, tokens.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }), u.ID, users.RoleCustomer)
	otherKey, err := auth.NewTokens("another-key-0123456789abcdefghijk", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	foreign := issue(t, otherKey, u.ID, users.RoleCustomer)
	now := time.Now()
	claims := jwt.MapClaims{"iss": auth.Issuer, "aud": auth.Audience, "sub": u.ID.String(), "role": users.RoleCustomer,
		"iat": now.Unix(), "nbf": now.Add(-time.Second).Unix(), "exp": now.Add(time.Minute).Unix()}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString([]byte(userstest.JWTKey))
	if err != nil {
		t.Fatal(err)
	}
	tampered := issue(t, tokens, u.ID, users.RoleCustomer)
	tampered = tampered[:len(tampered)-2] + "xx"

	for name, header := range map[string]string{
		"no header":        "",
		"no scheme":        issue(t, tokens, u.ID, users.RoleCustomer),
		"basic scheme":     "Basic ZGFuOnBhc3N3b3Jk",
		"empty bearer":     "Bearer ",
		"garbage":          "Bearer not.a.token",
		"expired":          "Bearer " + expired,
		"other key":        "Bearer " + foreign,
		"alg none":         "Bearer " + none,
		"alg HS512":        "Bearer " + hs512,
		"tampered":         "Bearer " + tampered,
		"unknown role":     "Bearer " + issue(t, tokens, u.ID, "superuser"),
		"deleted user":     "Bearer " + goneToken,
		"never-known user": "Bearer " + issue(t, tokens, uuid.New(), users.RoleCustomer),
		"admin of nobody":  "Bearer " + issue(t, tokens, uuid.New(), users.RoleAdmin),
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
// fnserve serves it (built on first use, again after a failure): a key
// shorter than 32 bytes is refused (503), a proper one serves the caller.
func TestBuildWiring(t *testing.T) {
	dir := t.TempDir()
	url := pgtest.NewDatabase(t)
	h := fnhttp.Lazy(Build, config.New(config.Env(map[string]string{"SECRETS_DIR": dir, "USERS_DATABASE_URL": url})), slog.Default())
	if err := os.WriteFile(filepath.Join(dir, "jwt-secret"), []byte("too-short"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(userstest.JWTKey, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: url, Migrations: usersdb.Migrations(), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	u := userstest.Register(t, usersdb.New(pool), "wired@example.com", "password-1", "Wired")
	bearer := "Bearer " + issue(t, tokens, u.ID, users.RoleCustomer)
	fntest.Problem(t, getMe(t, h, bearer), http.StatusServiceUnavailable, "unavailable", "jwt")

	if err := os.WriteFile(filepath.Join(dir, "jwt-secret"), []byte(userstest.JWTKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := fntest.JSON[users.User](t, getMe(t, h, bearer), http.StatusOK); got.ID != u.ID {
		t.Fatalf("got user %s, want %s", got.ID, u.ID)
	}
}
