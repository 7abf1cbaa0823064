// Package catalogdb is the catalog's store: products in the catalog database,
// their embedded search documents and their product.changed.v1 events, always
// written in one transaction.
package catalogdb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/pgsearch"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the catalog database's versioned migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Source is the CloudEvents source of the catalog's events.
const Source = "/shop/catalog"

// unavailable classifies a failure of the catalog database during op: the
// client may retry later (503), as with every other service's store.
func unavailable(op string, err error) *fault.Error {
	return fault.Wrap(fmt.Errorf("%s: %w", op, err), fault.Unavailable, fault.CodeUnavailable, "the catalog database is unavailable")
}

// inDoubt is unavailable for a write whose COMMIT went out and whose outcome
// is still not known (the database could not settle it, or the product was
// written again since), with a detail that says so and what to do: the
// write's own commit would refuse its repetition (409 sku_taken for a
// create, 412 for an update on the same If-Match, 404 for an archive), which
// would otherwise read as a refusal of another's write.
func inDoubt(op string, err error, detail string) *fault.Error {
	return fault.Wrap(fmt.Errorf("%s: %w", op, err), fault.Unavailable, fault.CodeUnavailable, detail)
}

// Store reads and writes the catalog database.
type Store struct {
	db  *pgxpool.Pool
	now func() time.Time
}

// New returns a store over the catalog database pool.
func New(db *pgxpool.Pool) *Store { return &Store{db: db, now: time.Now} }

const columns = `id, sku, name, description, category, price_amount, price_currency, sold_count, in_stock,
	archived, version, created_at, updated_at`

// scan reads a row of columns. Its times are in UTC, as a write answers
// them (catalog's stored): pgx reads a timestamptz in the process's time
// zone, so on a developer machine outside UTC one ETag's body differed by
// its offset between the write's answer and a read.
func scan(row pgx.Row) (catalog.Product, error) {
	var p catalog.Product
	err := row.Scan(scanDest(&p)...)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, err
}

// scanDest is where a row of columns goes, in order.
// scanRow is scan for pgx.CollectRows.
func scanRow(r pgx.CollectableRow) (catalog.Product, error) { return scan(r) }

func scanDest(p *catalog.Product) []any {
	return []any{&p.ID, &p.SKU, &p.Name, &p.Description, &p.Category, &p.Price.Amount, &p.Price.Currency,
		&p.SoldCount, &p.InStock, &p.Archived, &p.Version, &p.CreatedAt, &p.UpdatedAt}
}

// productsColumns is columns qualified by the table, for a statement that
// joins another relation with some of the same column names.
var productsColumns = qualified("products")

// qualified is columns with every name prefixed by table.
func qualified(table string) string {
	names := strings.Split(columns, ",")
	for i, n := range names {
		names[i] = table + "." + strings.TrimSpace(n)
	}
	return strings.Join(names, ", ")
}

var errNotFound = fault.E(fault.NotFound, fault.CodeNotFound, "no such product")

// ErrSKUTaken is returned when another product (archived ones included) has
// the SKU.
var ErrSKUTaken = fault.E(fault.Conflict, fault.CodeSKUTaken, "a product with this sku exists")

// changed writes the consequences of a product change on tx: its search
// document (removed once archived) and its product.changed.v1 event, whose
// data is the full snapshot including archived. Both go in one batch (the
// document, the outbox row and its NOTIFY): one round trip.
func changed(ctx context.Context, tx pgx.Tx, p catalog.Product) error {
	b := &pgx.Batch{}
	if err := queueChanged(ctx, b, p); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("product %s changed: %w", p.ID, err)
	}
	return nil
}

// queueChanged queues changed's statements on b, for a transaction sent as
// batches (postgres.BatchTx), whose last batch carries them with its COMMIT.
func queueChanged(ctx context.Context, b *pgx.Batch, p catalog.Product) error {
	ev, err := events.New(ctx, Source, events.ProductChanged, p.ID.String(), p)
	if err != nil {
		return err
	}
	queueSearch(b, p)
	outbox.Queue(b, ev)
	return nil
}

// queueSearch queues the write of p's search document on b (its removal once
// archived).
func queueSearch(b *pgx.Batch, p catalog.Product) {
	if p.Archived {
		pgsearch.QueueDelete(b, p.ID)
	} else {
		pgsearch.QueueUpsert(b, search.FromProduct(p))
	}
}

// Create inserts p, its search document and its event in one transaction.
// A duplicate SKU is ErrSKUTaken (fault.Conflict). Database failures are
// fault.Unavailable, but for a COMMIT whose answer was lost: Create settles
// it and answers the product when it committed (see settle); when that
// cannot be known, the 503's detail says it may have been created (inDoubt).
func (s *Store) Create(ctx context.Context, p catalog.Product) (catalog.Product, error) {
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		row := tx.QueryRow(ctx, `INSERT INTO products (id, sku, name, description, category, price_amount,
				price_currency, sold_count, in_stock, archived, version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 0, false, false, 1, $8, $8) RETURNING `+columns,
			p.ID, p.SKU, p.Name, p.Description, p.Category, p.Price.Amount, p.Price.Currency, p.CreatedAt)
		var err error
		if p, err = scan(row); err != nil {
			return err
		}
		return changed(ctx, tx, p)
	})
	if postgres.IsUniqueViolation(err, "products_sku_key") {
		return p, ErrSKUTaken
	}
	if err != nil {
		got, read, serr := s.settle(ctx, p.ID, err)
		switch {
		case serr == nil:
			return got, nil
		case !read:
			return p, inDoubt("create product", serr, "the catalog database failed as the product was being committed: it may have been created; "+
				"look for its sku before creating it again (409 sku_taken if it was)")
		}
		return p, unavailable("create product", serr)
	}
	return p, nil
}

// settle reads the product id after a write that failed with err: when the
// write's COMMIT answer was lost and it committed after all
// (postgres.ReadSettled), the product, archived or not, which the caller
// answers as a clean commit's (a 503 would invite a retry the product, now
// written, refuses: 409 sku_taken for a create, 412 for an If-Match update);
// otherwise an error, err joined with why, for the caller's 503. read
// reports whether the database told what the row is once the doubt was
// settled (the product, or no row: not committed), and is true when err left
// no doubt (the write did not commit); false, whether the write committed is
// not known: the caller's 503 says so (inDoubt).
func (s *Store) settle(ctx context.Context, id uuid.UUID, err error) (p catalog.Product, read bool, _ error) {
	var d *postgres.Doubt
	read = !errors.As(err, &d)
	err = postgres.ReadSettled(ctx, s.db, err, func(ctx context.Context) (rerr error) {
		p, rerr = scan(s.db.QueryRow(ctx, `SELECT `+columns+` FROM products WHERE id = $1`, id))
		read = rerr == nil || errors.Is(rerr, pgx.ErrNoRows)
		return rerr
	})
	return p, read, err
}

// Get returns a live product; a missing or archived one is fault.NotFound.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (catalog.Product, error) {
	p, err := scan(s.db.QueryRow(ctx, `SELECT `+columns+` FROM products WHERE id = $1 AND NOT archived`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, errNotFound
	}
	if err != nil {
		return p, unavailable("get product", err)
	}
	return p, nil
}

// Update locks the product (SELECT … FOR UPDATE), lets change decide the new
// state, and writes it with its search document and event in the same
// transaction. The domain owns the change (it bumps Version); errors from
// change are returned as they are. A missing product is fault.NotFound; a SKU
// taken by another product is ErrSKUTaken. Database failures are
// fault.Unavailable, but for a COMMIT whose answer was lost: Update settles
// it and answers the product when it is this update's (its version and its
// updated_at; see settle). A later write to the product meanwhile, or a
// database that cannot settle it, leaves it unknown: the 503, whose detail
// says the change may have been made (inDoubt).
func (s *Store) Update(ctx context.Context, id uuid.UUID, change func(catalog.Product, time.Time) (catalog.Product, error)) (catalog.Product, error) {
	var out catalog.Product
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		p, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM products WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		if out, err = change(p, s.now()); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE products SET sku = $2, name = $3, description = $4, category = $5,
				price_amount = $6, price_currency = $7, archived = $8, version = $9, updated_at = $10
			WHERE id = $1`, id, out.SKU, out.Name, out.Description, out.Category, out.Price.Amount,
			out.Price.Currency, out.Archived, out.Version, out.UpdatedAt)
		if err != nil {
			return err
		}
		return changed(ctx, tx, out)
	})
	switch {
	case err == nil:
		return out, nil
	case postgres.IsUniqueViolation(err, "products_sku_key"):
		return out, ErrSKUTaken
	case fault.Classified(err):
		return out, err
	}
	// The version alone could be another update's: one that locked the
	// product once this one rolled back, and bumped it to the same version.
	// Its updated_at, its own clock's, to the microsecond, is not this one's.
	p, read, serr := s.settle(ctx, id, err)
	if serr == nil && (p.Version != out.Version || !p.UpdatedAt.Equal(out.UpdatedAt)) {
		serr = errors.Join(err, fmt.Errorf("the product is at version %d of %s, not this update's %d of %s",
			p.Version, p.UpdatedAt, out.Version, out.UpdatedAt))
		// Versions only grow: at an older one, or at this one by another
		// update, this update did not commit; past it, it may have (and
		// been written over since) or not (and others wrote twice).
		read = p.Version <= out.Version
	}
	switch {
	case serr == nil:
		return p, nil
	case !read:
		return out, inDoubt("update product", serr, "the catalog database failed as the change was being committed: it may have been made; "+
			"read the product before repeating it")
	}
	return out, unavailable("update product", serr)
}

// List returns up to limit live products newest first (by UUIDv7 id) after the
// cursor id (uuid.Nil: from the start), in category when it is not empty, and
// whether more follow. The page is read through products_live or
// products_live_category from the cursor on (listAll, listAllAfter,
// listCategory, listCategoryAfter).
func (s *Store) List(ctx context.Context, category string, after uuid.UUID, limit int) ([]catalog.Product, bool, error) {
	return list(ctx, s.db, category, after, limit)
}

// querier runs a query: the pool, or a transaction (the tests').
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// The statements of List, one per shape of page: the whole catalog or a
// category, from the start or after a cursor. Each states the category and
// the cursor it has as index conditions of products_live_category
// (category, id DESC) or products_live (id DESC), so that any plan PostgreSQL
// keeps for it on a session — the generic plan it may cache after five runs
// included — reads the page from the cursor on. One statement for all four,
// with ($1 = empty OR category = $1) AND ($2 = the nil UUID OR id < $2), got a
// generic plan that walked the catalog from the newest product and filtered:
// a page deep in the list read every newer product
// (TestAListPageReadsItsOwnRowsOnly).
const (
	listAll = `SELECT ` + columns + ` FROM products
		WHERE NOT archived ORDER BY id DESC LIMIT $1`
	listAllAfter = `SELECT ` + columns + ` FROM products
		WHERE NOT archived AND id < $2 ORDER BY id DESC LIMIT $1`
	listCategory = `SELECT ` + columns + ` FROM products
		WHERE NOT archived AND category = $2 ORDER BY id DESC LIMIT $1`
	listCategoryAfter = `SELECT ` + columns + ` FROM products
		WHERE NOT archived AND category = $2 AND id < $3 ORDER BY id DESC LIMIT $1`
)

// list is List through q.
func list(ctx context.Context, q querier, category string, after uuid.UUID, limit int) ([]catalog.Product, bool, error) {
	query, args := listAll, []any{limit + 1}
	switch {
	case category == "" && after == uuid.Nil:
	case category == "":
		query, args = listAllAfter, append(args, after)
	case after == uuid.Nil:
		query, args = listCategory, append(args, category)
	default:
		query, args = listCategoryAfter, append(args, category, after)
	}
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, false, unavailable("list products", err)
	}
	items, err := pgx.CollectRows(rows, scanRow)
	if err != nil {
		return nil, false, unavailable("list products", err)
	}
	if len(items) > limit {
		return items[:limit], true, nil
	}
	return items, false, nil
}

// SetAvailability records whether the product can be bought (maintained from
// inventory events). It bumps the version and emits product.changed.v1 only
// when the value changes; the returned product is current. fault.NotFound when
// the product does not exist.
func (s *Store) SetAvailability(ctx context.Context, id uuid.UUID, inStock bool) (catalog.Product, error) {
	return s.setCounter(ctx, id, `in_stock`, inStock)
}

// SetSoldCount records how many units were sold (maintained from order
// events), with the same guarantees as SetAvailability. n must be >= 0.
func (s *Store) SetSoldCount(ctx context.Context, id uuid.UUID, n int64) (catalog.Product, error) {
	if n < 0 {
		return catalog.Product{}, fault.E(fault.Invalid, fault.CodeInvalidRequest, "sold count must not be negative")
	}
	return s.setCounter(ctx, id, `sold_count`, n)
}

func (s *Store) setCounter(ctx context.Context, id uuid.UUID, column string, value any) (catalog.Product, error) {
	var out catalog.Product
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		// column is one of two constants above, never client input.
		p, err := scan(tx.QueryRow(ctx, fmt.Sprintf(`UPDATE products SET %[1]s = $2, version = version + 1, updated_at = now()
			WHERE id = $1 AND %[1]s IS DISTINCT FROM $2 RETURNING `+columns, column), id, value))
		if errors.Is(err, pgx.ErrNoRows) {
			if out, err = scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM products WHERE id = $1`, id)); errors.Is(err, pgx.ErrNoRows) {
				return errNotFound
			}
			return err // unchanged (or a real error)
		}
		if err != nil {
			return err
		}
		out = p
		return changed(ctx, tx, p)
	})
	if err != nil && !fault.Classified(err) {
		return out, unavailable("set "+column, err)
	}
	return out, err
}

// CountEvents is how many product.changed.v1 events the outbox holds for the
// product (published or not); tests and operators use it.
func (s *Store) CountEvents(ctx context.Context, id uuid.UUID) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = $1 AND subject = $2`,
		events.ProductChanged, id.String()).Scan(&n)
	return n, err
}
