package usersenv_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users/usersenv"
)

// Load names every missing setting at once.
func TestLoadReportsEveryProblem(t *testing.T) {
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir()}))
	_, err := usersenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), usersenv.Needs{Tokens: true, Issue: true})
	if err == nil {
		t.Fatal("Load succeeded without configuration")
	}
	for _, want := range []string{"USERS_DATABASE_URL", "jwt-secret"} {
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
	env := map[string]string{config.SecretsDirEnv: secrets, "USERS_DATABASE_URL": pgtest.NewDatabase(t), "ACCESS_TOKEN_TTL": "2m"}
	d, err := usersenv.Load(context.Background(), config.New(config.Env(env)), slog.New(slog.DiscardHandler), usersenv.Needs{Tokens: true, Issue: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Store == nil || d.Tokens == nil {
		t.Errorf("deps %+v: want every dependency", d)
	}
}
