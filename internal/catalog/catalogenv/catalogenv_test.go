package catalogenv_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/search/pgsearch"
)

func TestLoadReportsEveryProblem(t *testing.T) {
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir()}))
	_, err := catalogenv.Load(context.Background(), c, slog.New(slog.DiscardHandler),
		catalogenv.Needs{Tokens: true, Cache: true, Search: true, Events: true})
	if err == nil {
		t.Fatal("Load succeeded without configuration")
	}
	for _, want := range []string{"CATALOG_DATABASE_URL", "REDIS_ADDR", "jwt-secret", "event-verify-key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	secrets := t.TempDir()
	if err := os.WriteFile(filepath.Join(secrets, "jwt-secret"), []byte("k-of-at-least-thirty-two-bytes-long!!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "event-verify-key"), []byte(verifyKey(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: secrets,
		"CATALOG_DATABASE_URL": pgtest.NewDatabase(t), "REDIS_ADDR": "127.0.0.1:6379"}))
	d, err := catalogenv.Load(context.Background(), c, slog.New(slog.DiscardHandler),
		catalogenv.Needs{Tokens: true, Cache: true, Search: true, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Events.Read(httptest.NewRequest("POST", "/", strings.NewReader("{}"))); !fault.Is(err, fault.Forbidden, fault.CodeInvalidSignature) {
		t.Errorf("Events.Read of an unsigned event = %v, want invalid_signature", err)
	}
	if _, ok := d.Search.(*pgsearch.Index); !ok || d.External != nil || d.Tokens == nil || d.Cache == nil || d.Store == nil {
		t.Errorf("deps %+v: want the embedded index and every dependency", d)
	}
	if err := d.Search.EnsureSettings(context.Background()); err != nil {
		t.Errorf("migrations not applied: %v", err)
	}
}

// verifyKey is the PEM public key of a fresh event-signing key.
func verifyKey(t *testing.T) string {
	t.Helper()
	_, verify, err := events.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return verify
}
