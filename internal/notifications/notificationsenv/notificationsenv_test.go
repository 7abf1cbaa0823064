package notificationsenv_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/notifications/notificationsenv"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// Load names every missing setting at once.
func TestLoadReportsEveryProblem(t *testing.T) {
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir()}))
	_, err := notificationsenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), notificationsenv.Needs{Tokens: true, Internal: true, Mail: true, Events: true})
	if err == nil {
		t.Fatal("Load succeeded without configuration")
	}
	for _, want := range []string{"USERS_DATABASE_URL", "jwt-secret", "internal-token", "event-verify-key"} {
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
	env := map[string]string{config.SecretsDirEnv: secrets, "USERS_DATABASE_URL": pgtest.NewDatabase(t), "SMTP_ADDR": "127.0.0.1:2525"}
	d, err := notificationsenv.Load(context.Background(), config.New(config.Env(env)), slog.New(slog.DiscardHandler), notificationsenv.Needs{Tokens: true, Internal: true, Mail: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Store == nil || d.Users == nil || d.Tokens == nil || d.InternalToken != "internal" || d.Mailer == nil {
		t.Errorf("deps %+v: want every dependency", d)
	}
}
