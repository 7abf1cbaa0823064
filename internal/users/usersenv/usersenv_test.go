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
		// login-user: signs, reads no verify key.
		Name: "issue", Load: load(usersenv.Needs{Issue: true}),
		Missing: []string{"USERS_DATABASE_URL", "jwt-signing-key"},
		Env:     map[string]string{"USERS_DATABASE_URL": db},
		Secrets: map[string]string{"jwt-signing-key": configtest.JWTSigningKey},
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Tokens != nil || d.Signer == nil {
				t.Errorf("deps %+v: want a signer and no verifier", d)
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
