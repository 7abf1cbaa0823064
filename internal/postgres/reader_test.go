package postgres_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// A reader with a URL of its own (<SERVICE>_READER_DATABASE_URL) logs in
// with the readers' password (db-password-<service>-reader), never the
// writers', and opens read-only; without it (a developer machine), or with
// <SERVICE>_READER_SHARES_WRITERS_ROLE=true (a faasd-CE bundle that serves a
// writer of the same database), it reads exactly the writers' settings and
// migrates as they do.
func TestReaderConfigFrom(t *testing.T) {
	secrets := t.TempDir()
	for name, pw := range map[string]string{"db-password-catalog": "writer-pw", "db-password-catalog-reader": "reader-pw\n"} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	migrations := fstest.MapFS{"0001_init.sql": {Data: []byte("SELECT 1;")}}
	env := map[string]string{config.SecretsDirEnv: secrets, "DATABASE_CREATE": "true", "DATABASE_MAX_CONNS": "5",
		"CATALOG_DATABASE_URL":           "postgres://shop_catalog@db:5432/shop_catalog",
		"CATALOG_DATABASE_MIGRATION_URL": "postgres://shop_catalog@direct:5432/shop_catalog",
		"CATALOG_READER_DATABASE_URL":    "postgres://shop_catalog_reader@db:5432/shop_catalog"}
	c := config.New(config.Env(env))
	got := postgres.ReaderConfigFrom(c, "catalog", migrations)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	want := postgres.Config{URL: "postgres://shop_catalog_reader@db:5432/shop_catalog", Password: "reader-pw", MaxConns: 5,
		Migrations: migrations, ReadOnly: true}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b fstest.MapFS) bool { return maps.EqualFunc(a, b, sameFile) })); diff != "" {
		t.Errorf("with its own URL (-want +got):\n%s", diff)
	}

	// Sharing the writers' role, or without its own URL: the writers'
	// settings, their password, migrating. Each case changes a copy of env,
	// so that none inherits another's change.
	for _, shared := range []map[string]string{{"CATALOG_READER_SHARES_WRITERS_ROLE": "true"}, {"CATALOG_READER_DATABASE_URL": ""}} {
		caseEnv := maps.Clone(env)
		maps.Copy(caseEnv, shared)
		c = config.New(config.Env(caseEnv))
		got, writers := postgres.ReaderConfigFrom(c, "catalog", migrations), postgres.ConfigFrom(config.New(config.Env(caseEnv)), "catalog", migrations)
		if err := c.Err(); err != nil {
			t.Fatal(err)
		}
		if got.ReadOnly || got.URL != writers.URL || got.Password != "writer-pw" || got.MigrationURL != writers.MigrationURL ||
			!got.CreateDatabase || got.Migrations == nil {
			t.Errorf("with %v: %+v, want the writers' %+v", shared, got, writers)
		}
	}
	// Its own URL with SHARES_WRITERS_ROLE=false: its own role, read-only.
	caseEnv := maps.Clone(env)
	caseEnv["CATALOG_READER_SHARES_WRITERS_ROLE"] = "false"
	c = config.New(config.Env(caseEnv))
	got = postgres.ReaderConfigFrom(c, "catalog", migrations)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b fstest.MapFS) bool { return maps.EqualFunc(a, b, sameFile) })); diff != "" {
		t.Errorf("with its own URL and CATALOG_READER_SHARES_WRITERS_ROLE=false (-want +got):\n%s", diff)
	}
	// … and it needs the writers' URL then, as they do.
	delete(env, "CATALOG_DATABASE_URL")
	delete(env, "CATALOG_READER_DATABASE_URL")
	c = config.New(config.Env(env))
	postgres.ReaderConfigFrom(c, "catalog", migrations)
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "CATALOG_DATABASE_URL") {
		t.Errorf("neither URL set: error %v, want one naming CATALOG_DATABASE_URL", err)
	}
}

func sameFile(a, b *fstest.MapFile) bool { return string(a.Data) == string(b.Data) }

// A reader never migrates: opened read-only on a database that lacks a
// migration its binary knows (its release's readers started before its
// writers migrated), Open fails with ErrNotMigrated naming the file, and
// the database is left as it was, the migration neither run nor recorded;
// once a writer has migrated, the reader opens. A database no writer has
// touched (no schema_migrations) is not migrated either.
func TestAReaderNeverMigrates(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	older := fstest.MapFS{"0001_log.sql": migrations["0001_log.sql"], "0002_things.sql": migrations["0002_things.sql"]}
	newer := maps.Clone(older)
	newer["0003_colour.sql"] = &fstest.MapFile{Data: []byte(`ALTER TABLE things ADD COLUMN colour text;`)}

	if _, err := postgres.Open(ctx, postgres.Config{URL: url, Migrations: newer, ReadOnly: true}); !errors.Is(err, postgres.ErrNotMigrated) ||
		!strings.Contains(err.Error(), "0001_log.sql") {
		t.Errorf("a reader on an empty database: %v, want ErrNotMigrated naming 0001_log.sql", err)
	}
	writer, err := postgres.Open(ctx, postgres.Config{URL: url, Migrations: older})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()

	_, err = postgres.Open(ctx, postgres.Config{URL: url, Migrations: newer, ReadOnly: true})
	if !errors.Is(err, postgres.ErrNotMigrated) || !strings.Contains(err.Error(), "0003_colour.sql") ||
		!strings.Contains(err.Error(), "has not migrated it yet: call its /_/ready") {
		t.Errorf("a reader of a newer release: %v, want ErrNotMigrated naming 0003_colour.sql and what to do", err)
	}
	if diff := cmp.Diff([]string{"0001_log.sql", "0002_things.sql"}, applied(t, writer)); diff != "" {
		t.Errorf("schema_migrations after the reader opened (-want +got):\n%s", diff)
	}
	var colour bool
	if err := writer.QueryRow(ctx, `SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'things' AND column_name = 'colour')`).Scan(&colour); err != nil || colour {
		t.Errorf("things.colour exists: %v (%v), want the reader's migration not run", colour, err)
	}

	// Once a writer of the newer release has migrated, both releases'
	// readers open: the newer one's, and the older one's on a database
	// ahead of it (a rolling upgrade, whose old readers keep serving until
	// they are replaced). In this order, every run.
	if err := postgres.Migrate(ctx, writer, newer); err != nil {
		t.Fatal(err)
	}
	for _, release := range []struct {
		name string
		fsys fstest.MapFS
	}{{"older", older}, {"newer", newer}} {
		reader, err := postgres.Open(ctx, postgres.Config{URL: url, Migrations: release.fsys, ReadOnly: true})
		if err != nil {
			t.Errorf("the %s release's reader on a database migrated by the newer release: %v", release.name, err)
			continue
		}
		reader.Close()
	}
}
