package ordersenv

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestLoadReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(context.Background(), config.New(config.Env(map[string]string{config.SecretsDirEnv: dir})), slog.Default(), Needs{Tokens: true, Saga: true})
	if err == nil {
		t.Fatal("loaded without configuration")
	}
	for _, want := range []string{"ORDERS_DATABASE_URL", "jwt-secret", "internal-token", "GATEWAY_URL", "REDIS_ADDR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"jwt-secret": strings.Repeat("k", 32), "internal-token": "internal"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{config.SecretsDirEnv: dir, "ORDERS_DATABASE_URL": pgtest.NewDatabase(t),
		"GATEWAY_URL": "http://127.0.0.1:1", "REDIS_ADDR": "127.0.0.1:6379", "RECOVER_AFTER": "90s"}
	e, err := Load(context.Background(), config.New(config.Env(env)), slog.Default(), Needs{Tokens: true, Saga: true})
	if err != nil {
		t.Fatal(err)
	}
	if e.Saga == nil || e.Store == nil || e.Tokens == nil || e.InternalToken != "internal" {
		t.Fatalf("env %+v", e)
	}
	env["RECOVER_AFTER"] = "5s" // below the saga timeout: recovery would race live requests
	if _, err := Load(context.Background(), config.New(config.Env(env)), slog.Default(), Needs{Tokens: true, Saga: true}); err == nil {
		t.Fatal("accepted RECOVER_AFTER below SAGA_TIMEOUT")
	}
}
