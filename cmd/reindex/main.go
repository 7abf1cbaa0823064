// Command reindex rebuilds Meilisearch's products index from the catalog,
// after Meilisearch lost its data or whenever the index is suspected to be
// behind:
//
//	reindex    apply the index settings, push every live product, remove every other document
//
// It first reads Meilisearch's version (GET /version) and refuses, before
// it changes anything, one older than v1.2 (the first whose document
// listing takes a filter) or one whose version it cannot parse
// (meili.Index.CheckListingVersion). Meilisearch answers GET /version 403
// to a key without the "version" action (made before it was asked for)
// and to a wrong key alike, so the command then lists no document (GET
// /indexes/{uid}/documents?limit=0, which the reindex needs anyway): a
// key refused there too is asked GET /tasks (tasks.get, which every
// meili-key has had): answered, the key is genuine but may not list the
// index, and the run fails at once ("meili-key may not list the documents
// of index products"), naming both causes Meilisearch answers alike: the
// key lacks documents.get on the index (remake it: docs/deploy-faasd.md
// step 7 item 7), or its indexes do not include it (a key made for
// another index, or MEILI_INDEX set to another than the guide's
// products: said too when it is); refused too, it fails at
// once ("meili-key refused", never the key, no warning); a key allowed it
// gets one warning on stderr and the run goes on. Then, whatever the
// version check answered, it checks the listing itself before it changes
// anything, settings included (meili.Index.CheckListingFilter: one
// listing with a filter nothing matches). A key refused there is asked GET
// /tasks as above, so a key allowed the version but not documents.get
// fails here, "meili-key may not list the documents of index products",
// nothing pushed (it used to pass the version check, push every product
// and fail only at its first listing); a key refused GET /tasks too there
// is never called refused, as Meilisearch has just accepted it: it lacks
// documents.get and tasks.get, or was deleted meanwhile. Meilisearch 1.0
// and 1.1 refuse the filter, 400 (a server whose version was read as
// v1.2 or later is told an unexpected listing answer, not to upgrade), and
// a listing that ignores it answers a document (on an empty index, seen
// only once the first batch is pushed, so checked again then when the
// version is unchecked), so a key without the version action still fails
// against one. It then
// applies the index settings with the writers' own call
// (meili.Index.EnsureSettings), pushes every live (not archived) product of
// shop_catalog in batches of REINDEX_BATCH, waiting for each Meilisearch
// task to succeed, then removes each document whose product is archived or
// not in the catalog (indexing.Reindex). It is safe to run while the shop is
// live: a product that a writer changes while it runs is pushed again as the
// writers push (read again after the push lands, until what landed is
// current), and one run removes every stale document even while writers
// archive and create products: it lists the index by spans of document
// buckets (each span in one request; a bucket too full to split, read
// whole before any of its ids is checked, up to meili.MaxBucketIDs ids: a
// fuller one stops the run), never by an offset that a
// deletion, its own or a writer's, shifts (meili.Index.EachDocumentIDs). It prints what
// it did (pushed, pushed again, deleted) and exits 1 on any error, the
// counts so far printed. Only a run that exits 0 guarantees that no older
// row stays in the index: Meilisearch may still apply a batch whose push
// failed or was interrupted (the command then pushes that batch's changed
// products again, best effort), so after exit 1 or an interrupt (Ctrl-C,
// SIGTERM), run it again until it exits 0.
//
// Its database access is read-only: every session it opens has
// default_transaction_read_only on, and it fails before reading anything
// unless SHOW transaction_read_only answers on (a pooler that dropped the
// parameter would leave the session writable), so the URL must reach
// PostgreSQL directly (PgBouncer refuses a startup parameter it does not
// know); it applies no migration and creates no database, and it refuses
// a catalog whose schema_migrations lacks a migration of its release
// (postgres.ErrNotMigrated, as a reader's build does: run it once a writer
// has migrated). It reads the products and schema_migrations alone, which
// the catalog readers' role may read: with
// CATALOG_READER_DATABASE_URL set it logs in as that role, with the
// password of db-password-catalog-reader, as get-product does
// (postgres.ReaderConfigFrom), and needs neither CATALOG_DATABASE_URL nor
// the catalog owner's password, whose role could write the catalog and its
// outbox had the session set the default off (docs/security.md, "Database
// roles"); unset (or with CATALOG_READER_SHARES_WRITERS_ROLE true), it
// logs in with CATALOG_DATABASE_URL and db-password-catalog, as before.
//
// Environment: CATALOG_READER_DATABASE_URL, or else CATALOG_DATABASE_URL
// (required then), MEILI_URL (required), MEILI_INDEX [products],
// REINDEX_BATCH [500, 1 to 10000], SECRETS_DIR [/var/openfaas/secrets]
// holding db-password-catalog-reader, or else db-password-catalog
// (optional: the URL's password otherwise), and meili-key (the writers'
// key, which must also be allowed documents.get, and version for the
// version check; optional for a Meilisearch without a master key). Locally:
//
//	CATALOG_DATABASE_URL=postgres://postgres@127.0.0.1:5432/shop_catalog MEILI_URL=http://127.0.0.1:7700 \
//	  SECRETS_DIR=.local/secrets go run ./cmd/reindex
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/catalog/indexing"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/search/meili"
)

const usage = `usage:
  reindex    apply the products index's settings, push every live product of the catalog,
             remove every document whose product is archived or not in the catalog; it never
             migrates, and refuses a catalog its release's writers have not migrated yet,
             a Meilisearch older than v1.2, and a meili-key that may not list the documents
             (documents.get), before it pushes anything
environment: CATALOG_READER_DATABASE_URL or else CATALOG_DATABASE_URL, MEILI_URL, MEILI_INDEX [products],
             REINDEX_BATCH [500], SECRETS_DIR [/var/openfaas/secrets] with db-password-catalog-reader
             (or else db-password-catalog) and meili-key`

// guideIndex is MEILI_INDEX's default, the index the deployment guides'
// key loops make meili-key for ("indexes":["products"]): a key made there
// may not list another.
const guideIndex = "products"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "reindex:", err)
		os.Exit(1)
	}
}

// run reindexes as configured by getenv, printing what it did to out and
// its warnings to warn.
func run(ctx context.Context, args []string, getenv func(string) string, out, warn io.Writer) error {
	if len(args) == 1 && isHelp(args[0]) {
		// Asked for, the usage is an answer, not an error (exit 0).
		_, err := fmt.Fprintln(out, usage)
		return err
	}
	if len(args) > 0 {
		return errors.New(usage)
	}
	c := config.New(getenv)
	dbc := postgres.ReaderConfigFrom(c, "catalog", nil)
	mc := meili.Config{URL: c.Required("MEILI_URL"), IndexUID: c.String("MEILI_INDEX", guideIndex),
		APIKey: c.OptionalSecret(catalogenv.IndexKeySecret)}
	batch := c.Int("REINDEX_BATCH", indexing.DefaultBatch, 1, 10_000)
	if err := c.Err(); err != nil {
		return err
	}
	ix, err := meili.New(mc)
	if err != nil {
		return err
	}
	pool, err := openReadOnly(ctx, dbc, urlVar(dbc))
	if err != nil {
		return err
	}
	defer pool.Close()
	d := &catalogenv.Deps{Store: catalogdb.New(pool), External: ix,
		Log: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
	n, err := indexing.Reindex(ctx, d, ix, batch)
	if errors.Is(err, meili.ErrKeyRefused) {
		err = fmt.Errorf("%s refused: %w", catalogenv.IndexKeySecret, err)
	} else if errors.Is(err, meili.ErrKeyLacksListing) {
		// A genuine key that may not list this index: made before
		// documents.get was asked for, or for another index (the guide's
		// key loop names guideIndex alone). Its value is right; the
		// error names both causes, and which one the index suggests.
		var made string
		if mc.IndexUID != guideIndex {
			made = fmt.Sprintf(" (MEILI_INDEX is %s, but the guide's key loop makes %s for index %s alone: docs/deploy-faasd.md step 5)",
				mc.IndexUID, catalogenv.IndexKeySecret, guideIndex)
		}
		err = fmt.Errorf("%s may not list the documents of index %s%s: %w", catalogenv.IndexKeySecret, mc.IndexUID, made, err)
	}
	if n.VersionUnchecked != nil {
		fmt.Fprintf(warn, "reindex: warning: %v; remaking meili-key with the \"version\" action adds the check "+
			"(optional: docs/deploy-faasd.md step 7, item 11); without it a Meilisearch older than v1.2 is "+
			"still refused, by a check of the listing's filter before any push\n", n.VersionUnchecked)
	}
	fmt.Fprintf(out, "pushed %d product(s) (%d pushed again, changed meanwhile), deleted %d document(s) from %s\n",
		n.Pushed, n.Repushed, n.Deleted, mc.IndexUID)
	return err
}

// urlVar names the variable of dbc's URL, for the errors that speak of it:
// postgres.ReaderConfigFrom marks the readers' settings ReadOnly, and gives
// the writers' (CATALOG_DATABASE_URL) otherwise.
func urlVar(dbc postgres.Config) string {
	if dbc.ReadOnly {
		return postgres.ReaderURLVar("catalog")
	}
	return "CATALOG_DATABASE_URL"
}

// openReadOnly opens the catalog pool the command reads through: no
// database created, no migration applied, every session read-only (readOnly
// adds default_transaction_read_only=on to the URL), and the database
// checked migrated as far as this binary's catalog migrations, as a
// reader's is (postgres.ErrNotMigrated, naming the first missing file: a
// reindex of a release run before its writers migrated could push
// documents the new release reads otherwise). It then asks the
// session whether it is read-only and fails unless it is: a pooler that
// drops the startup parameter instead of refusing it would otherwise leave
// the sessions writable without a word. urlVar names dbc.URL's variable in
// its errors.
func openReadOnly(ctx context.Context, dbc postgres.Config, urlVar string) (*pgxpool.Pool, error) {
	dbc.CreateDatabase, dbc.MigrationURL = false, ""
	dbc.ReadOnly, dbc.Migrations = true, catalogdb.Migrations()
	var err error
	if dbc.URL, err = readOnly(dbc.URL, urlVar); err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, postgres.OpenTimeout)
	defer cancel()
	pool, err := postgres.Open(octx, dbc)
	if err != nil {
		return nil, err
	}
	if err := checkReadOnly(octx, pool, urlVar); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// checkReadOnly fails unless a session of pool has transaction_read_only on;
// urlVar names the variable of pool's URL.
func checkReadOnly(ctx context.Context, pool *pgxpool.Pool, urlVar string) error {
	var ro string
	if err := pool.QueryRow(ctx, "SHOW transaction_read_only").Scan(&ro); err != nil {
		return fmt.Errorf("check that the catalog session is read-only: %w", err)
	}
	if ro != "on" {
		return fmt.Errorf("the catalog session is not read-only (transaction_read_only %q): "+
			"%s must reach PostgreSQL directly, not through a pooler that drops default_transaction_read_only", ro, urlVar)
	}
	return nil
}

// readOnly is the database URL with default_transaction_read_only on, a
// run-time parameter every session it opens starts with: a write would fail
// (read_only_sql_transaction). Both spellings pgx parses are kept: a
// postgres:// URL gets it as a query parameter, a keyword/value string as
// one more pair. urlVar names raw's variable in the error.
func readOnly(raw, urlVar string) (string, error) {
	const param = "default_transaction_read_only"
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", errors.New(urlVar + " is not a valid URL") // the URL may hold a password
		}
		q := u.Query()
		q.Set(param, "on")
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return raw + " " + param + "=on", nil
}

// isHelp reports whether arg asks for the usage, as the flag package reads
// it (flag.ErrHelp).
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}
