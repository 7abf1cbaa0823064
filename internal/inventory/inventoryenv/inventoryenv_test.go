package inventoryenv_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/inventory/inventoryenv"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// Load names every missing setting at once and builds every dependency asked
// for.
func TestLoad(t *testing.T) {
	configtest.Run(t, configtest.Case[*inventoryenv.Deps]{
		Name: "everything",
		Load: func(c *config.Reader) (*inventoryenv.Deps, error) {
			return inventoryenv.Load(context.Background(), c, slog.New(slog.DiscardHandler),
				inventoryenv.Needs{Tokens: true, Internal: true, Catalog: true, OrdersCaller: "expire-reservations"})
		},
		Missing: []string{"INVENTORY_DATABASE_URL", "jwt-verify-key", "internal-callers", "GATEWAY_URL", "internal-token-expire-reservations"},
		Env:     map[string]string{"INVENTORY_DATABASE_URL": pgtest.NewDatabase(t), "GATEWAY_URL": "http://127.0.0.1:1"},
		Secrets: configtest.CallerSecrets,
		Check: func(t *testing.T, d *inventoryenv.Deps) {
			if d.Store == nil || d.Tokens == nil || d.Catalog == nil || d.Internal == nil || d.Orders == nil {
				t.Errorf("deps %+v: want every dependency", d)
			}
		},
	})
}
