package usersenv_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users/usersenv"
)

// Load names every missing setting at once, builds every dependency asked
// for, and reads no secret it was not asked for.
func TestLoad(t *testing.T) {
	load := func(needs usersenv.Needs) func(*config.Reader) (*usersenv.Deps, error) {
		return func(c *config.Reader) (*usersenv.Deps, error) {
			return usersenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), needs)
		}
	}
	db := pgtest.NewDatabase(t)
	configtest.Run(t, configtest.Case[*usersenv.Deps]{
		Name: "everything", Load: load(usersenv.Needs{Tokens: true, Issue: true}),
		Missing: []string{"USERS_DATABASE_URL", "jwt-verify-key", "jwt-signing-key"},
		Env:     map[string]string{"USERS_DATABASE_URL": db, "ACCESS_TOKEN_TTL": "2m"},
		Secrets: map[string]string{"jwt-verify-key": configtest.CallerSecrets["jwt-verify-key"], "jwt-signing-key": configtest.JWTSigningKey},
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Store == nil || d.Tokens == nil || d.Signer == nil || d.Signer.TTL() != 2*time.Minute {
				t.Errorf("deps %+v: want every dependency", d)
			}
		},
	}, configtest.Case[*usersenv.Deps]{
		// get-me: verifies, never signs.
		Name: "tokens", Load: load(usersenv.Needs{Tokens: true}),
		Missing: []string{"USERS_DATABASE_URL", "jwt-verify-key"},
		Env:     map[string]string{"USERS_DATABASE_URL": db},
		Secrets: map[string]string{"jwt-verify-key": configtest.CallerSecrets["jwt-verify-key"]},
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Tokens == nil || d.Signer != nil {
				t.Errorf("deps %+v: want a verifier and no signer", d)
			}
		},
	}, configtest.Case[*usersenv.Deps]{
		// login-user: signs, limits logins per account, reads no verify key.
		Name: "issue", Load: load(usersenv.Needs{Issue: true, LoginLimit: true}),
		Missing: []string{"USERS_DATABASE_URL", "jwt-signing-key", "REDIS_ADDR"},
		Env:     map[string]string{"USERS_DATABASE_URL": db, "REDIS_ADDR": "127.0.0.1:6379", "LOGIN_RATE_LIMIT": "2"},
		Secrets: map[string]string{"jwt-signing-key": configtest.JWTSigningKey},
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Tokens != nil || d.Signer == nil || d.LoginLimit == nil {
				t.Fatalf("deps %+v: want a signer, a login limit and no verifier", d)
			}
			// LOGIN_RATE_LIMIT is read, and the counts are this database's:
			// the third login of one key is refused.
			key := "usersenv-test-" + time.Now().Format(time.RFC3339Nano)
			for i := range 3 {
				err := d.LoginLimit.Allow(context.Background(), key)
				if (err != nil) != (i == 2) {
					t.Errorf("login %d: %v", i+1, err)
				}
			}
		},
	}, configtest.Case[*usersenv.Deps]{
		Name: "nothing optional", Load: load(usersenv.Needs{}),
		Env: map[string]string{"USERS_DATABASE_URL": db},
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Store == nil || d.Tokens != nil {
				t.Errorf("deps %+v: want the store only", d)
			}
		},
	})
}
