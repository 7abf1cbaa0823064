package cartenv_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/shopfaas/shop/internal/cart/cartenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
)

// Load names every missing setting at once, builds every dependency asked
// for, and reads no secret it was not asked for.
func TestLoad(t *testing.T) {
	load := func(needs cartenv.Needs) func(*config.Reader) (*cartenv.Deps, error) {
		return func(c *config.Reader) (*cartenv.Deps, error) {
			return cartenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), needs)
		}
	}
	configtest.Run(t, configtest.Case[*cartenv.Deps]{
		Name: "everything", Load: load(cartenv.Needs{Tokens: true, Pricing: true}),
		Missing: []string{"REDIS_ADDR", "jwt-verify-key", "GATEWAY_URL"},
		Env:     map[string]string{"REDIS_ADDR": "127.0.0.1:6379", "GATEWAY_URL": "http://127.0.0.1:1"},
		Secrets: configtest.CallerSecrets,
		Check: func(t *testing.T, d *cartenv.Deps) {
			if d.Tokens == nil || d.Carts == nil || d.Service == nil {
				t.Errorf("deps %+v: want every dependency", d)
			}
		},
	}, configtest.Case[*cartenv.Deps]{
		Name: "nothing optional", Load: load(cartenv.Needs{}),
		Env: map[string]string{"REDIS_ADDR": "127.0.0.1:6379"},
		Check: func(t *testing.T, d *cartenv.Deps) {
			if d.Tokens != nil || d.Carts == nil || d.Service != nil {
				t.Errorf("deps %+v: want the carts only", d)
			}
		},
	})
}
