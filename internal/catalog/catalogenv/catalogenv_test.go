package catalogenv_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/cache"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
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

// A product cache that Redis refuses (its password changed on Redis's side
// after the function was built, or an ACL denies the cache's commands:
// NOPERM) is a miss, as any cache failure is, but logged at error level
// naming the secret and not the password: it is a configuration error, not
// an outage to ride out. A Redis that cannot be reached stays a warning.
func TestACacheRefusedItsLoginIsAMissLoggedAsAnError(t *testing.T) {
	const password = "catalogCachePassword"
	for _, tt := range []struct {
		name  string
		rules []string // the default user's change once the cache is built; nil: no Redis
		level string
	}{
		{"password changed", []string{"resetpass", ">rotatedPassword"}, "ERROR"},
		{"commands denied", []string{"-get", "-eval", "-evalsha"}, "ERROR"},
		{"unreachable", nil, "WARN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := "127.0.0.1:1"
			if tt.rules != nil {
				addr = redisconntest.Server(t, password)
			}
			c, err := cache.New(context.Background(), cache.Config{Redis: redisconntest.FromSecret(t, addr, password, redisconn.ConfigFrom),
				Prefix: "product:", Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.rules != nil {
				redisconntest.SetDefaultUser(t, addr, password, tt.rules...)
			}
			var logged bytes.Buffer
			d := &catalogenv.Deps{Cache: c, Log: slog.New(slog.NewJSONHandler(&logged, nil))}
			ctx := context.Background()
			if _, _, ok := d.Cached(ctx, "p"); ok {
				t.Fatal("Cached: a hit")
			}
			d.Invalidate(ctx, catalog.Product{})
			lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("logged %q, want one line per failed call", logged.String())
			}
			for _, line := range lines {
				if !strings.Contains(line, `"level":"`+tt.level+`"`) || strings.Contains(line, password) {
					t.Errorf("logged %s: want level %s and no password", line, tt.level)
				}
				if tt.level == "ERROR" && !strings.Contains(line, "redis-password") {
					t.Errorf("logged %s: want it to name the redis-password secret", line)
				}
			}
		})
	}
}
