// Package inventorydb stores stock levels in the inventory service's own
// PostgreSQL database. Every change of a level that takes a product out of
// stock or brings it back, and its stock.changed.v1 event, are written in one
// transaction (the outbox), so the event exists if and only if the change
// committed.
package inventorydb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the inventory database's versioned migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrationFiles, "migrations") // cannot fail: the directory is embedded
	return sub
}

// Store reads and writes stock levels. It is safe for concurrent use.
type Store struct {
	db *pgxpool.Pool
}

// New returns a store over pool, whose database has Migrations applied.
func New(pool *pgxpool.Pool) *Store { return &Store{db: pool} }

// Get returns the stock level of a product. A product that was never stocked
// is fault.NotFound (there is no implicit zero row); database failures are
// fault.Unavailable.
func (s *Store) Get(ctx context.Context, productID uuid.UUID) (inventory.Stock, error) {
	st, err := scan(s.db.QueryRow(ctx,
		`SELECT product_id, on_hand, reserved, updated_at, version FROM stock WHERE product_id = $1`, productID))
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fault.E(fault.NotFound, fault.CodeNotFound, "no stock for this product")
	}
	if err != nil {
		return st, unavailable(err)
	}
	return st, nil
}

// SetOnHand sets the on-hand level of a product when pre holds on its stock
// row as it is now, and appends stock.changed.v1 in the same transaction when
// the product goes out of stock or comes back. A product never stocked gets
// its row here (pre must then be inventory.IfAbsent). The row is locked while
// pre and the domain decide, so neither a reservation nor the sweep selling or
// giving back a hold can slip between the check and the write.
//
// Errors: fault.PreconditionRequired for the zero pre;
// fault.PreconditionFailed "precondition_failed" when pre does not hold
// (naming the current version); fault.Conflict "below_reserved" when onHand is
// below the reserved units; fault.Invalid when it is out of range;
// fault.Unavailable. A refused change writes nothing.
func (s *Store) SetOnHand(ctx context.Context, productID uuid.UUID, onHand int, pre inventory.Precondition) (inventory.Stock, error) {
	if err := inventory.ValidOnHand(onHand); err != nil {
		return inventory.Stock{}, err
	}
	var out inventory.Stock
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		cur, err := scan(tx.QueryRow(ctx,
			`SELECT product_id, on_hand, reserved, updated_at, version FROM stock WHERE product_id = $1 FOR UPDATE`, productID))
		exists := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return unavailable(err)
		}
		if err := pre.Check(cur, exists); err != nil {
			return err
		}
		if !exists {
			cur = inventory.Stock{ProductID: productID}
		}
		next, err := cur.SetOnHand(onHand)
		if err != nil {
			return err
		}
		if exists {
			out, err = scan(tx.QueryRow(ctx,
				`UPDATE stock SET on_hand = $2, updated_at = now() WHERE product_id = $1
				 RETURNING product_id, on_hand, reserved, updated_at, version`, productID, next.OnHand))
		} else {
			out, err = scan(tx.QueryRow(ctx,
				`INSERT INTO stock (product_id, on_hand, reserved) VALUES ($1, $2, 0)
				 ON CONFLICT (product_id) DO NOTHING
				 RETURNING product_id, on_hand, reserved, updated_at, version`, productID, next.OnHand))
			if errors.Is(err, pgx.ErrNoRows) {
				// Stocked by a concurrent first write since the read
				// above (the INSERT waited for it to commit): refused
				// as the read would have been, naming its version.
				if cur, err = scan(tx.QueryRow(ctx,
					`SELECT product_id, on_hand, reserved, updated_at, version FROM stock WHERE product_id = $1`, productID)); err != nil {
					return unavailable(err)
				}
				if err := pre.Check(cur, true); err != nil {
					return err
				}
				return fault.Internalf("stock of %s: a first write found the row it expected absent", productID)
			}
		}
		if err != nil {
			return unavailable(err)
		}
		return appendChanged(ctx, tx, &pgx.Batch{}, []inventory.Stock{out}, func(int) int { return out.Available() - cur.Available() })
	})
	return out, txErr(err)
}

// Init gives a product its first stock level and reports whether it did: a
// product that already has a stock row is left untouched (created is false),
// which makes seeding idempotent. A created row with units on hand emits
// stock.changed.v1 in the same transaction.
func (s *Store) Init(ctx context.Context, productID uuid.UUID, onHand int) (created bool, err error) {
	if err := inventory.ValidOnHand(onHand); err != nil {
		return false, err
	}
	err = postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		st, err := scan(tx.QueryRow(ctx,
			`INSERT INTO stock (product_id, on_hand, reserved) VALUES ($1, $2, 0)
			 ON CONFLICT (product_id) DO NOTHING
			 RETURNING product_id, on_hand, reserved, updated_at, version`, productID, onHand))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return unavailable(err)
		}
		created = true
		return appendChanged(ctx, tx, &pgx.Batch{}, []inventory.Stock{st}, func(int) int { return st.Available() }) // none was available before
	})
	return created, txErr(err)
}

// txErr is the error of a postgres.Tx: a fault its function decided (a
// precondition, a refusal) as it is, and anything else (the BEGIN or the
// COMMIT failing, a database that cannot be reached) through unavailable,
// so a database that is down is a 503, not a 500.
func txErr(err error) error {
	if err == nil || fault.Classified(err) {
		return err
	}
	return unavailable(err)
}

func scan(row pgx.Row) (inventory.Stock, error) {
	var st inventory.Stock
	err := row.Scan(&st.ProductID, &st.OnHand, &st.Reserved, &st.UpdatedAt, &st.Version)
	return st, err
}

// unavailable classifies a database error: fault.Unavailable (503), but for
// a CHECK violation, which is fault.Internal (500, logged with its cause).
func unavailable(err error) error {
	if postgres.IsCheckViolation(err) {
		// No request can reach a CHECK: set-stock decides under the row's
		// lock, a reservation and a retake are conditional UPDATEs, and
		// every other move gives back or sells units a locked hold counts
		// in reserved. One refusing a move means the row and its holds
		// disagree (a defect, or a hand edit): an operator must see it.
		// Until 2026-12-07 it was 409 stock_conflict, logged at debug level
		// only and listed by no operation of the document.
		return fault.Internalf("inventory database: stock out of step with its holds: %w", err)
	}
	return fault.Wrap(fmt.Errorf("inventory database: %w", err), fault.Unavailable, fault.CodeUnavailable, "inventory temporarily unavailable")
}
