package catalogenv_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/search/pgsearch"
)

// Load names every missing setting at once and builds every dependency asked
// for, with the embedded search index when MEILI_URL is not set.
func TestLoad(t *testing.T) {
	configtest.Run(t, configtest.Case[*catalogenv.Deps]{
		Name: "everything",
		Load: func(c *config.Reader) (*catalogenv.Deps, error) {
			return catalogenv.Load(context.Background(), c, slog.New(slog.DiscardHandler),
				catalogenv.Needs{Tokens: true, Cache: true, Search: true, Events: true})
		},
		Missing: []string{"CATALOG_DATABASE_URL", "REDIS_ADDR", "jwt-verify-key", "event-verify-key"},
		Env:     map[string]string{"CATALOG_DATABASE_URL": pgtest.NewDatabase(t), "REDIS_ADDR": "127.0.0.1:6379"},
		Secrets: map[string]string{"jwt-verify-key": configtest.CallerSecrets["jwt-verify-key"], "event-verify-key": configtest.VerifyKey(t)},
		Check: func(t *testing.T, d *catalogenv.Deps) {
			if _, err := d.Events.Read(httptest.NewRequest("POST", "/", strings.NewReader("{}"))); !fault.Is(err, fault.Forbidden, fault.CodeInvalidSignature) {
				t.Errorf("Events.Read of an unsigned event = %v, want invalid_signature", err)
			}
			if _, ok := d.Search.(*pgsearch.Index); !ok || d.External != nil || d.Tokens == nil || d.Cache == nil || d.Store == nil {
				t.Errorf("deps %+v: want the embedded index and every dependency", d)
			}
			if err := d.Search.EnsureSettings(context.Background()); err != nil {
				t.Errorf("migrations not applied: %v", err)
			}
		},
	})
}
