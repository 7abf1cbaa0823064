package catalogdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

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
// changed product gets its search document (and a new version) in the same
// transaction, and is returned for the after-commit step (cache invalidation,
// the external search index). A sale writes no product.changed.v1: the sale
// is order.placed.v1's and order.cancelled.v1's to tell, and
// update-product-stats pushes the new counts to the external index itself
// (docs/events.md). Database failures are fault.Unavailable.
//
// Round trips (TestSaleEventRoundTrips, postgres.BatchTx): BEGIN with the
// claim and the order's sale; the sold counts of all its products in one
// batch; their search documents with the COMMIT: 3 whatever the number of
// products (6 for one product before, one batch and UPDATE more per further
// product). An event that changes no count is 2.
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
	failed := func(err error) ([]catalog.Product, bool, error) {
		return nil, false, unavailable("add sold counts", err)
	}
	// BEGIN, the claim and the order's sale in one batch: the sale does not
	// wait for the claim's answer (a duplicate finds the sale moved already
	// by the first delivery, and is rolled back anyway).
	b := &pgx.Batch{}
	if err := inbox.QueueClaim(b, eventID, consumer, &first); err != nil {
		return failed(err)
	}
	var counts bool
	queueRecordSale(b, orderID, cancelled, &counts)
	tx, br := postgres.BeginBatch(ctx, s.db, b)
	defer tx.Rollback(ctx)
	if err := br.Close(); err != nil {
		return failed(err)
	}
	if !first {
		return nil, false, nil // a duplicate: rolled back, nothing changed
	}
	var w *pgx.Batch
	if counts && len(ids) > 0 {
		// The sold counts, one UPDATE per product in id order (the lock
		// order), in one batch.
		u := &pgx.Batch{}
		for _, id := range ids {
			u.Queue(`UPDATE products SET sold_count = GREATEST(sold_count + $2, 0),
					version = version + 1, updated_at = now()
				WHERE id = $1 AND sold_count IS DISTINCT FROM GREATEST(sold_count + $2, 0) RETURNING `+columns, id, sum[id]).QueryRow(func(row pgx.Row) error {
				p, err := scan(row)
				if errors.Is(err, pgx.ErrNoRows) {
					return nil // unknown product, or a decrement already at zero
				}
				if err == nil {
					changedProducts = append(changedProducts, p)
				}
				return err
			})
		}
		if err := tx.SendBatch(ctx, u).Close(); err != nil {
			return failed(err)
		}
		// Their search documents go with the COMMIT.
		w = &pgx.Batch{}
		for _, p := range changedProducts {
			queueSearch(w, p)
		}
	}
	if err := tx.Commit(ctx, w); err != nil {
		return failed(err)
	}
	return changedProducts, true, nil
}

// queueRecordSale queues on b the move of the order's sale along placed →
// cancelled (or straight to cancelled_first when the cancellation comes
// first); *counts is set, when b's results are read, to whether this event
// changes the sold counts.
func queueRecordSale(b *pgx.Batch, orderID uuid.UUID, cancelled bool, counts *bool) {
	sql := `INSERT INTO order_sales (order_id, state) VALUES ($1, 'placed')
		ON CONFLICT (order_id) DO NOTHING RETURNING state`
	if cancelled {
		sql = `INSERT INTO order_sales (order_id, state) VALUES ($1, 'cancelled_first')
			ON CONFLICT (order_id) DO UPDATE SET state = 'cancelled', updated_at = now()
			WHERE order_sales.state = 'placed' RETURNING state`
	}
	b.Queue(sql, orderID).QueryRow(func(row pgx.Row) error {
		var state string
		err := row.Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // already placed, already cancelled, or cancelled before it was placed
		}
		*counts = state == "placed" || state == "cancelled"
		return err
	})
}

// ErrSalesKept is PruneOrderSales' answer where the catalog's settled sales
// cannot be pruned yet; its text says why.
var ErrSalesKept = errors.New("settled order sales kept")

// PruneSalesBatches is the most batches (postgres.DeleteBatch rows each)
// one PruneOrderSales deletes.
const PruneSalesBatches = 20

// PruneOrderSales deletes the settled sales (cancelled, or cancelled before
// they were placed) last changed more than olderThan ago from the database
// behind db, and reports how many went; on a database without the table
// (every service database but the catalog's) it does nothing. It deletes
// nothing, and answers ErrSalesKept, until their index (migration 0010) is
// built and valid, so that it reads only what it deletes (a concurrent build
// shows the index before it is ready, and a failed one leaves it invalid),
// nor where it may not delete them (shop_relay created after migration 0009
// ran, until split-roles.sh grants it): the sales are kept, as they were
// before, and the relay says so once rather than each cleanup ending its
// session. The outbox relay calls
// it with its inbox retention (INBOX_RETENTION): every event of such an order
// that could still come, a duplicate or a placement delivered after its
// cancellation, is older than the cancellation that settled it, so past the
// retention the consumers refuse it as expired (inbox.Events) before it could
// miss its sale. Placed sales are kept: the order's cancellation may come at
// any time and must find its placement to subtract it. Until 2026-12-06 every
// checkout refused at once left a cancelled_first row for ever.
//
// The sales go in batches, oldest first, at most PruneSalesBatches of them
// (postgres.DeleteBatches): the relay prunes in the loop that publishes the
// catalog's events, so a backlog (an upgrade's pile of old sales, a lowered
// INBOX_RETENTION) goes over several cleanups instead of holding the events
// up; until 2026-12-06 one cleanup deleted the whole backlog.
func PruneOrderSales(ctx context.Context, db postgres.Querier, olderThan time.Duration) (int64, error) {
	var state string
	if err := db.QueryRow(ctx, `SELECT CASE WHEN to_regclass('order_sales') IS NULL THEN 'absent'
		WHEN NOT coalesce((SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('order_sales_settled_at')), false)
			THEN 'no valid index order_sales_settled_at (catalog migration 0010) yet'
		WHEN NOT (has_table_privilege('order_sales', 'SELECT') AND has_table_privilege('order_sales', 'DELETE'))
			THEN 'no SELECT and DELETE on order_sales (catalog migration 0009, split-roles.sh)'
		ELSE 'prunable' END`).Scan(&state); err != nil {
		return 0, fmt.Errorf("prune order sales: %w", err)
	}
	switch state {
	case "absent":
		return 0, nil
	case "prunable":
	default:
		return 0, fmt.Errorf("%w: %s", ErrSalesKept, state)
	}
	deleted, err := postgres.DeleteBatches(ctx, db, PruneSalesBatches, `DELETE FROM order_sales WHERE ctid = ANY(ARRAY(SELECT ctid
		FROM order_sales WHERE state <> 'placed' AND updated_at < now() - make_interval(secs => $1) ORDER BY updated_at LIMIT $2))`,
		olderThan.Seconds())
	if err != nil {
		return deleted, fmt.Errorf("prune order sales: %w", err)
	}
	return deleted, nil
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
// kept); database failures are fault.Unavailable.
//
// Round trips (TestStockEventRoundTrips): one batch with BEGIN, the claim and
// one UPDATE that locks the row, records the version and flips in_stock when
// it differs, then COMMIT (postgres.BatchTx) — 2 for the usual event that
// leaves in_stock as it was (4 with a round trip per statement, 6 before
// that). The UPDATE does not wait for the claim's answer: for a duplicate it
// changes nothing (the first delivery, committed, left stock_version at or
// above the event's version) and the transaction is rolled back anyway. A flip
// sends its search document and product.changed.v1 with the COMMIT; a late
// event or an unknown product adds one look-up.
func (s *Store) SetAvailabilityOnce(ctx context.Context, eventID uuid.UUID, consumer string, id uuid.UUID, inStock bool, version int64) (p catalog.Product, first, changedProduct bool, err error) {
	b := &pgx.Batch{}
	if err := inbox.QueueClaim(b, eventID, consumer, &first); err != nil {
		return p, false, false, fault.Internalf("set availability: %w", err)
	}
	// old locks the row (FOR UPDATE: the newest committed row, not the
	// statement's snapshot) and keeps the values the UPDATE replaces;
	// SET's right-hand sides read the row before the update.
	var was bool
	updated := false
	dst := append([]any{&was}, scanDest(&p)...)
	b.Queue(`WITH old AS (SELECT id, in_stock FROM products WHERE id = $1 FOR UPDATE)
		UPDATE products SET stock_version = $3, in_stock = $2,
			version = products.version + CASE WHEN old.in_stock = $2 THEN 0 ELSE 1 END,
			updated_at = CASE WHEN old.in_stock = $2 THEN products.updated_at ELSE now() END
		FROM old WHERE products.id = old.id AND products.stock_version < $3
		RETURNING old.in_stock, `+productsColumns, id, inStock, version).QueryRow(func(row pgx.Row) error {
		err := row.Scan(dst...)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		updated = err == nil
		return err
	})
	tx, br := postgres.BeginBatch(ctx, s.db, b)
	defer tx.Rollback(ctx)
	if err := br.Close(); err != nil {
		return catalog.Product{}, false, false, unavailable("set availability", err)
	}
	if !first {
		return catalog.Product{}, false, false, nil // a duplicate: rolled back, nothing changed
	}
	var w *pgx.Batch
	switch {
	case !updated:
		// An older or equal version (claimed, nothing else), or no such
		// product (the claim rolls back with the error).
		p = catalog.Product{}
		var exists bool
		q := &pgx.Batch{}
		q.Queue(`SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)`, id).QueryRow(func(row pgx.Row) error { return row.Scan(&exists) })
		if err := tx.SendBatch(ctx, q).Close(); err != nil {
			return p, false, false, unavailable("set availability", err)
		}
		if !exists {
			return p, true, false, errNotFound
		}
	case was != inStock:
		w = &pgx.Batch{}
		if err := queueChanged(ctx, w, p); err != nil {
			return catalog.Product{}, false, false, fault.Internalf("set availability: %w", err)
		}
	}
	if err := tx.Commit(ctx, w); err != nil {
		return catalog.Product{}, false, false, unavailable("set availability", err)
	}
	return p, true, w != nil, nil
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
		return p, unavailable("get product", err)
	}
	return p, nil
}

// LivePage returns up to limit live (not archived) products in id order
// after the cursor id (uuid.Nil: from the start): the reindex command pages
// through the catalog with it, so its memory does not grow with the
// catalog. One SELECT, an index walk of the primary key.
func (s *Store) LivePage(ctx context.Context, after uuid.UUID, limit int) ([]catalog.Product, error) {
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM products WHERE NOT archived AND id > $1 ORDER BY id LIMIT $2`,
		after, limit)
	if err != nil {
		return nil, unavailable("page products", err)
	}
	items, err := pgx.CollectRows(rows, scanRow)
	if err != nil {
		return nil, unavailable("page products", err)
	}
	return items, nil
}

// CurrentOf returns the products of ids as stored now, archived or not, by
// id; an id the catalog does not have is absent from the map. One SELECT.
func (s *Store) CurrentOf(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]catalog.Product, error) {
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM products WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, unavailable("get products", err)
	}
	items, err := pgx.CollectRows(rows, scanRow)
	if err != nil {
		return nil, unavailable("get products", err)
	}
	out := make(map[uuid.UUID]catalog.Product, len(items))
	for _, p := range items {
		out[p.ID] = p
	}
	return out, nil
}
