package paymentsenv_test

import (
	"context"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/payments/paymentsenv"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Load names every missing setting at once and builds every dependency asked
// for.
func TestLoad(t *testing.T) {
	configtest.Run(t, configtest.Case[*paymentsenv.Deps]{
		Name: "everything",
		Load: func(c *config.Reader) (*paymentsenv.Deps, error) {
			return paymentsenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), paymentsenv.Needs{Tokens: true, Internal: true})
		},
		Missing: []string{"PAYMENTS_DATABASE_URL", "jwt-verify-key", "internal-callers"},
		Env:     map[string]string{"PAYMENTS_DATABASE_URL": pgtest.NewDatabase(t)},
		Secrets: configtest.CallerSecrets,
		Check: func(t *testing.T, d *paymentsenv.Deps) {
			if d.Service == nil || d.Tokens == nil || d.Internal == nil {
				t.Errorf("deps %+v: want every dependency", d)
			}
		},
	})
}

// A migration Load tries again because its lock was not granted is logged
// through Load's logger (postgres.Config.Log), so on faasd CE it names the
// bundle's member, not the process that slog.Default() names.
func TestLoadLogsAMigrationRetryThroughItsLogger(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pool, err := postgres.Open(ctx, postgres.Config{URL: url, Migrations: paymentsdb.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// The last migration that runs in a transaction (only those are tried
	// again under a lock timeout; a postgres.NoTransaction file is not) is
	// pending again, and recording it (an INSERT into schema_migrations)
	// waits behind a SHARE lock held until the retry's warning is seen.
	if tag, err := pool.Exec(ctx, `DELETE FROM schema_migrations WHERE name = $1`, lastInATransaction(t)); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("make the migration pending again: %v (%d rows)", err, tag.RowsAffected())
	}
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(ctx) }()
	if _, err := holder.Exec(ctx, `LOCK TABLE schema_migrations IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}

	var logged proctest.Output
	log := telemetry.ForMember(telemetry.NewLogger(&logged, "payments", slog.LevelInfo), "charge-payment")
	c := config.New(config.Env(map[string]string{"PAYMENTS_DATABASE_URL": url,
		"DATABASE_MIGRATION_LOCK_TIMEOUT": "100ms", config.SecretsDirEnv: t.TempDir()}))
	loaded := make(chan error, 1)
	go func() {
		_, err := paymentsenv.Load(ctx, c, log, paymentsenv.Needs{})
		loaded <- err
	}()
	const warning = `"msg":"a migration's lock was not granted within the lock timeout; it is tried again"`
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logged.String(), warning); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no retry warning through Load's logger within 5 s; it logged:\n%s", logged.String())
			break
		}
	}
	_ = holder.Rollback(ctx)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(logged.String()) {
		if strings.Contains(l, warning) && !strings.Contains(l, `"function":"charge-payment","bundle":"payments"`) {
			t.Errorf("retry warning %s: want function charge-payment, bundle payments", strings.TrimSpace(l))
		}
	}
}

// lastInATransaction names the newest migration of the payments database
// that does not start with postgres.NoTransaction.
func lastInATransaction(t *testing.T) string {
	t.Helper()
	files, err := fs.Glob(paymentsdb.Migrations(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	for _, f := range slices.Backward(files) {
		b, err := fs.ReadFile(paymentsdb.Migrations(), f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), postgres.NoTransaction) {
			return f
		}
	}
	t.Fatal("no payments migration runs in a transaction")
	return ""
}
