package cartenv_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/cart/cartenv"
	"github.com/shopfaas/shop/internal/config"
)

// Load names every missing setting at once.
func TestLoadReportsEveryProblem(t *testing.T) {
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir()}))
	_, err := cartenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), cartenv.Needs{Tokens: true, Pricing: true})
	if err == nil {
		t.Fatal("Load succeeded without configuration")
	}
	for _, want := range []string{"REDIS_ADDR", "jwt-secret", "GATEWAY_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// With its configuration, Load builds every dependency asked for.
func TestLoad(t *testing.T) {
	secrets := t.TempDir()
	for name, v := range map[string]string{"jwt-secret": strings.Repeat("k", 32), "internal-token": "internal"} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{config.SecretsDirEnv: secrets, "REDIS_ADDR": "127.0.0.1:6379", "GATEWAY_URL": "http://127.0.0.1:1"}
	d, err := cartenv.Load(context.Background(), config.New(config.Env(env)), slog.New(slog.DiscardHandler), cartenv.Needs{Tokens: true, Pricing: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Tokens == nil || d.Carts == nil || d.Service == nil {
		t.Errorf("deps %+v: want every dependency", d)
	}
}
