package postgres_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres"
)

// Every service reads its database settings the same way: its own URL
// variable, the shared pool settings and its own password secret,
// db-password-<service>: never another service's, nor the one db-password
// all services shared before each had a role of its own.
func TestConfigFrom(t *testing.T) {
	secrets := t.TempDir()
	for name, pw := range map[string]string{"db-password-orders": "pw\n", "db-password-users": "users-pw", "db-password": "shared-pw"} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	migrations := fstest.MapFS{"0001_init.sql": {Data: []byte("SELECT 1;")}}
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: secrets,
		"ORDERS_DATABASE_URL": "postgres://shop@127.0.0.1:5432/shop_orders", "DATABASE_CREATE": "true", "DATABASE_MAX_CONNS": "7",
		"ORDERS_DATABASE_MIGRATION_URL": "postgres://shop@10.0.0.5:5432/shop_orders", "DATABASE_MIGRATION_LOCK_TIMEOUT": "2s",
		"DATABASE_MIGRATION_TIMEOUT": "3h"}))
	got := postgres.ConfigFrom(c, "orders", migrations)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if got.URL != "postgres://shop@127.0.0.1:5432/shop_orders" || !got.CreateDatabase || got.MaxConns != 7 || got.Password != "pw" || got.Migrations == nil ||
		got.MigrationURL != "postgres://shop@10.0.0.5:5432/shop_orders" || got.MigrationLockTimeout != 2*time.Second ||
		got.MigrationTimeout != 3*time.Hour {
		t.Errorf("config %+v", got)
	}

	c = config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir(), "DATABASE_MAX_CONNS": "99",
		"DATABASE_MIGRATION_LOCK_TIMEOUT": "0", "DATABASE_MIGRATION_TIMEOUT": "500ms"}))
	got = postgres.ConfigFrom(c, "users", migrations)
	err := c.Err()
	for _, want := range []string{"USERS_DATABASE_URL", "DATABASE_MAX_CONNS", "DATABASE_MIGRATION_LOCK_TIMEOUT", "DATABASE_MIGRATION_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	if got.Password != "" || got.MigrationURL != "" {
		t.Errorf("password %q without a db-password-users secret, migration URL %q unset", got.Password, got.MigrationURL)
	}

	// Unset, the lock timeout is the default.
	c = config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir(), "USERS_DATABASE_URL": "postgres://shop@127.0.0.1:5432/shop_users"}))
	if got := postgres.ConfigFrom(c, "users", migrations); c.Err() != nil || got.MigrationLockTimeout != postgres.DefaultMigrationLockTimeout {
		t.Errorf("migration lock timeout %s (%v), want the default %s", got.MigrationLockTimeout, c.Err(), postgres.DefaultMigrationLockTimeout)
	}
	if got := postgres.ConfigFrom(c, "users", migrations); c.Err() != nil || got.MigrationTimeout != postgres.DefaultMigrationTimeout {
		t.Errorf("migration timeout %s (%v), want the default %s", got.MigrationTimeout, c.Err(), postgres.DefaultMigrationTimeout)
	}
}
