package catalogdb

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/postgres"
)

// AddSold applies the sold-count changes of one order event (eventID,
// processed by consumer; positive deltas for order.placed.v1, negative for
// order.cancelled.v1 of orderID) in ONE transaction with the event's inbox
// claim: a duplicate delivery (first=false) changes nothing. The order's sale
// is tracked (order_sales), so a placement counts once, a cancellation
// subtracts only a counted placement, and a cancellation delivered before its
// placement makes the late placement count nothing. Deltas of the same product
// are summed; products are locked in id order, so concurrent events never
// deadlock. A count never goes below zero. Unknown products are skipped. Each
// changed product gets its search document and product.changed.v1 event in the
// same transaction, and is returned for the after-commit step (cache
// invalidation). Failures are fault.Internal.
func (s *Store) AddSold(ctx context.Context, eventID uuid.UUID, consumer string, orderID uuid.UUID, cancelled bool, deltas []catalog.SoldDelta) (changedProducts []catalog.Product, first bool, err error) {
	sum := map[uuid.UUID]int64{}
	for _, d := range deltas {
		sum[d.ProductID] += d.Delta
	}
	ids := make([]uuid.UUID, 0, len(sum))
	for id, d := range sum {
		if d != 0 {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return cmp.Compare(a.String(), b.String()) })
	err = postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		changedProducts = nil
		var err error
		if first, err = inbox.Claim(ctx, tx, eventID, consumer); err != nil || !first {
			return err
		}
		counts, err := recordSale(ctx, tx, orderID, cancelled)
		if err != nil || !counts {
			return err
		}
		for _, id := range ids {
			p, err := scan(tx.QueryRow(ctx, `UPDATE products SET sold_count = GREATEST(sold_count + $2, 0),
					version = version + 1, updated_at = now()
				WHERE id = $1 AND sold_count IS DISTINCT FROM GREATEST(sold_count + $2, 0) RETURNING `+columns, id, sum[id]))
			if errors.Is(err, pgx.ErrNoRows) {
				continue // unknown product, or a decrement already at zero
			}
			if err != nil {
				return err
			}
			if err := changed(ctx, tx, p); err != nil {
				return err
			}
			changedProducts = append(changedProducts, p)
		}
		return nil
	})
	if err != nil {
		return nil, false, fault.Internalf("add sold counts: %w", err)
	}
	return changedProducts, first, nil
}

// recordSale moves the order's sale along placed → cancelled (or straight to
// cancelled_first when the cancellation comes first) and reports whether this
// event changes the sold counts.
func recordSale(ctx context.Context, tx pgx.Tx, orderID uuid.UUID, cancelled bool) (bool, error) {
	var state string
	var err error
	if !cancelled {
		err = tx.QueryRow(ctx, `INSERT INTO order_sales (order_id, state) VALUES ($1, 'placed')
			ON CONFLICT (order_id) DO NOTHING RETURNING state`, orderID).Scan(&state)
	} else {
		err = tx.QueryRow(ctx, `INSERT INTO order_sales (order_id, state) VALUES ($1, 'cancelled_first')
			ON CONFLICT (order_id) DO UPDATE SET state = 'cancelled', updated_at = now()
			WHERE order_sales.state = 'placed' RETURNING state`, orderID).Scan(&state)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // already placed, already cancelled, or cancelled before it was placed
	}
	if err != nil {
		return false, err
	}
	return state == "placed" || state == "cancelled", nil
}

// SetAvailabilityOnce is SetAvailability for the consumer of one
// stock.changed.v1 event of the given stock version: the change and the
// event's inbox claim commit together, and a duplicate delivery (first=false)
// changes nothing. An event whose version is not newer than the last one
// applied (a late, reordered delivery) is claimed but changes nothing, so
// in_stock always follows the newest stock level. changedProduct is false when
// nothing but the claim (and the version) was written; p is then the product
// after the version's update, or the zero product when the version was not
// newer. fault.NotFound when the product does not exist (the claim is then not
// kept); other failures are fault.Internal.
//
// Round trips (TestStockEventRoundTrips): BEGIN, the claim, one UPDATE that
// locks the row, records the version and flips in_stock when it differs, and
// COMMIT — 4 for the usual event that leaves in_stock as it was (6 before:
// the row was locked, updated and read back in three statements). A flip adds
// its search document and product.changed.v1; a late event or an unknown
// product adds one look-up.
func (s *Store) SetAvailabilityOnce(ctx context.Context, eventID uuid.UUID, consumer string, id uuid.UUID, inStock bool, version int64) (p catalog.Product, first, changedProduct bool, err error) {
	err = postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		changedProduct, p = false, catalog.Product{}
		var err error
		if first, err = inbox.Claim(ctx, tx, eventID, consumer); err != nil || !first {
			return err
		}
		// old locks the row (FOR UPDATE: the newest committed row, not the
		// statement's snapshot) and keeps the values the UPDATE replaces;
		// SET's right-hand sides read the row before the update.
		var was bool
		dst := append([]any{&was}, scanDest(&p)...)
		err = tx.QueryRow(ctx, `WITH old AS (SELECT id, in_stock FROM products WHERE id = $1 FOR UPDATE)
			UPDATE products SET stock_version = $3, in_stock = $2,
				version = products.version + CASE WHEN old.in_stock = $2 THEN 0 ELSE 1 END,
				updated_at = CASE WHEN old.in_stock = $2 THEN products.updated_at ELSE now() END
			FROM old WHERE products.id = old.id AND products.stock_version < $3
			RETURNING old.in_stock, `+productsColumns, id, inStock, version).Scan(dst...)
		if errors.Is(err, pgx.ErrNoRows) {
			// An older or equal version (claimed, nothing else), or no such
			// product (the claim rolls back with the error).
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)`, id).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return errNotFound
			}
			return nil
		}
		if err != nil || was == inStock {
			return err
		}
		changedProduct = true
		return changed(ctx, tx, p)
	})
	var fe *fault.Error
	if err != nil && !errors.As(err, &fe) {
		err = fault.Internalf("set availability: %w", err)
	}
	return p, first, changedProduct, err
}

// Current returns the product as stored now, archived or not, so a consumer
// acting on a (possibly stale or reordered) product.changed.v1 event uses the
// latest state. fault.NotFound when it does not exist.
func (s *Store) Current(ctx context.Context, id uuid.UUID) (catalog.Product, error) {
	p, err := scan(s.db.QueryRow(ctx, `SELECT `+columns+` FROM products WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, errNotFound
	}
	if err != nil {
		return p, fault.Internalf("get product: %w", err)
	}
	return p, nil
}
