package paymentsenv_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/payments/paymentsenv"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// Load names every missing setting at once and builds every dependency asked
// for.
func TestLoad(t *testing.T) {
	configtest.Run(t, configtest.Case[*paymentsenv.Deps]{
		Name: "everything",
		Load: func(c *config.Reader) (*paymentsenv.Deps, error) {
			return paymentsenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), paymentsenv.Needs{Tokens: true, Internal: true})
		},
		Missing: []string{"PAYMENTS_DATABASE_URL", "jwt-verify-key", "internal-callers"},
		Env:     map[string]string{"PAYMENTS_DATABASE_URL": pgtest.NewDatabase(t)},
		Secrets: configtest.CallerSecrets,
		Check: func(t *testing.T, d *paymentsenv.Deps) {
			if d.Service == nil || d.Tokens == nil || d.Internal == nil {
				t.Errorf("deps %+v: want every dependency", d)
			}
		},
	})
}
