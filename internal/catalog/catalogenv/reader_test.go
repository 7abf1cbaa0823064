package catalogenv_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// list-products (Needs.Reader) with a database URL of its own,
// CATALOG_READER_DATABASE_URL, never migrates: on a database whose
// schema_migrations lacks the newest migration it knows, its build fails
// with postgres.ErrNotMigrated naming it, and the migration is neither run
// nor recorded; once a writer has migrated, it builds. Without that URL it
// opens the database as the writers do, migrating it (a developer machine).
func TestAReaderWithItsOwnURLDoesNotMigrate(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	url := pgtest.NewDatabase(t)
	load := func(env map[string]string, needs catalogenv.Needs) error {
		env[config.SecretsDirEnv] = t.TempDir()
		_, err := catalogenv.Load(ctx, config.New(config.Env(env)), log, needs)
		return err
	}
	reader := map[string]string{"CATALOG_DATABASE_URL": "postgres://unused@127.0.0.1:1/shop_catalog", "CATALOG_READER_DATABASE_URL": url}
	if err := load(reader, catalogenv.Needs{Reader: true}); !errors.Is(err, postgres.ErrNotMigrated) {
		t.Fatalf("the reader on a database never migrated: %v, want ErrNotMigrated", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL OR to_regclass('products') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("the reader migrated the database (%v)", err)
	}

	// The writers migrate; then the newest migration is taken back out of
	// the record, as on a database of the release before.
	if err := load(map[string]string{"CATALOG_DATABASE_URL": url}, catalogenv.Needs{}); err != nil {
		t.Fatal(err)
	}
	var newest string
	if err := conn.QueryRow(ctx, `DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations) RETURNING name`).Scan(&newest); err != nil {
		t.Fatal(err)
	}
	err = load(reader, catalogenv.Needs{Reader: true})
	if !errors.Is(err, postgres.ErrNotMigrated) || !strings.Contains(err.Error(), newest) {
		t.Errorf("the reader on a database behind it: %v, want ErrNotMigrated naming %s", err, newest)
	}
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM schema_migrations WHERE name = $1)`, newest).Scan(&exists); err != nil || exists {
		t.Errorf("the reader applied %s (%v)", newest, err)
	}

	// Without its own URL, the reader opens as the writers do and migrates.
	if err := load(map[string]string{"CATALOG_DATABASE_URL": url}, catalogenv.Needs{Reader: true}); err != nil {
		t.Errorf("the reader without its own URL: %v", err)
	}
	if err := load(reader, catalogenv.Needs{Reader: true}); err != nil {
		t.Errorf("the reader with its own URL, on a migrated database: %v", err)
	}
}

// A reader writes nothing: Load refuses Needs.Reader with the needs of the
// writers (the index's admin key, events, internal callers), which a
// read-only role could not serve anyway.
func TestAReaderHasNoWritersNeeds(t *testing.T) {
	for _, needs := range []catalogenv.Needs{{Reader: true, Index: true}, {Reader: true, Events: true}, {Reader: true, Internal: true}, {Reader: true, Tokens: true}} {
		c := config.New(config.Env(map[string]string{"CATALOG_DATABASE_URL": "postgres://unused@127.0.0.1:1/shop_catalog"}))
		if _, err := catalogenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), needs); err == nil ||
			!strings.Contains(err.Error(), "a reader (Needs.Reader) writes nothing") {
			t.Errorf("Load with %+v = %v, want the refusal of a reader that writes", needs, err)
		}
	}
}
