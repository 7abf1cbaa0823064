package usersenv_test

import (
	"context"
	"log/slog"
	"testing"

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
		Missing: []string{"USERS_DATABASE_URL", "jwt-secret"},
		Env:     map[string]string{"USERS_DATABASE_URL": db, "ACCESS_TOKEN_TTL": "2m"},
		Secrets: configtest.CallerSecrets,
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Store == nil || d.Tokens == nil {
				t.Errorf("deps %+v: want every dependency", d)
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
