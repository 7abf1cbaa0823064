package inventorydb

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
)

// Reservations of stock for orders in flight (migration 0002). Every method
// runs in ONE transaction that first locks the order's reservation row, then
// the stock rows of its lines in product-id order, so concurrent calls for the
// same order serialise and calls for different orders cannot deadlock. Every
// stock change also appends stock.changed.v1 in that transaction.

// Reserve holds every line of req in one transaction with conditional updates
// (on_hand - reserved >= quantity), so stock is never oversold. It is
// idempotent by order: a repeat for an order already held or committed answers
// its current state and changes nothing. Errors: fault.Conflict "out_of_stock"
// naming the product (nothing is reserved), fault.Conflict
// "reservation_released" when the order's hold was already given back,
// fault.Unavailable when the database fails.
func (s *Store) Reserve(ctx context.Context, req inventory.HoldRequest) (inventory.Hold, error) {
	var out inventory.Hold
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		var expiresAt time.Time
		err := tx.QueryRow(ctx, `INSERT INTO reservations (order_id, status, expires_at)
			VALUES ($1, 'held', now() + make_interval(secs => $2))
			ON CONFLICT (order_id) DO NOTHING RETURNING expires_at`,
			req.OrderID, req.TTL.Seconds()).Scan(&expiresAt)
		if errors.Is(err, pgx.ErrNoRows) {
			// The order already reserved (a concurrent twin waited on the
			// unique key until the first committed).
			h, err := loadHold(ctx, tx, req.OrderID)
			if err != nil {
				return err
			}
			out, err = h.ReserveAgain()
			return err
		}
		if err != nil {
			return unavailable(err)
		}
		lines := sortedLines(req.Lines)
		for _, l := range lines {
			st, err := scan(tx.QueryRow(ctx, `UPDATE stock SET reserved = reserved + $2, updated_at = now()
				WHERE product_id = $1 AND on_hand - reserved >= $2
				RETURNING product_id, on_hand, reserved, updated_at, version`, l.ProductID, l.Quantity))
			if errors.Is(err, pgx.ErrNoRows) {
				return inventory.ErrOutOfStock(l.ProductID)
			}
			if err != nil {
				return unavailable(err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO reservation_lines (order_id, product_id, quantity) VALUES ($1, $2, $3)`,
				req.OrderID, l.ProductID, l.Quantity); err != nil {
				return unavailable(err)
			}
			if err := publish(ctx, tx, st); err != nil {
				return err
			}
		}
		out = inventory.Hold{OrderID: req.OrderID, Status: inventory.StatusHeld, ExpiresAt: expiresAt, Lines: lines}
		return nil
	})
	return out, err
}

// Commit turns the order's hold into a sale: on_hand and reserved both drop by
// each line's quantity. A hold that was released or expired is taken again
// conditionally and committed directly; when the stock is gone that is
// fault.Conflict "out_of_stock" and nothing changes. Committing twice is a
// no-op answered "committed". Errors: fault.NotFound "not_found" when the order
// never reserved, fault.Conflict "reservation_released" when the order was
// already restocked (cancelled), fault.Unavailable on database failure.
func (s *Store) Commit(ctx context.Context, orderID uuid.UUID) (inventory.Hold, error) {
	var out inventory.Hold
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		h, err := loadHold(ctx, tx, orderID)
		if err != nil {
			return err
		}
		retake, done, err := h.CanCommit()
		if err != nil || done {
			out = h
			return err
		}
		for _, l := range h.Lines {
			var st inventory.Stock
			if retake {
				st, err = scan(tx.QueryRow(ctx, `UPDATE stock SET on_hand = on_hand - $2, updated_at = now()
					WHERE product_id = $1 AND on_hand - reserved >= $2
					RETURNING product_id, on_hand, reserved, updated_at, version`, l.ProductID, l.Quantity))
				if errors.Is(err, pgx.ErrNoRows) {
					return inventory.ErrOutOfStock(l.ProductID)
				}
			} else {
				st, err = scan(tx.QueryRow(ctx, `UPDATE stock SET on_hand = on_hand - $2, reserved = reserved - $2, updated_at = now()
					WHERE product_id = $1
					RETURNING product_id, on_hand, reserved, updated_at, version`, l.ProductID, l.Quantity))
			}
			if err != nil {
				return unavailable(err)
			}
			if err := publish(ctx, tx, st); err != nil {
				return err
			}
		}
		out, err = setStatus(ctx, tx, h, inventory.StatusCommitted)
		return err
	})
	return out, err
}

// Release gives the order's stock back: a held order's units leave reserved
// (status "released"); a committed order's units return on hand (status
// "restocked", for a cancelled order). An order already released, expired or
// restocked is answered with its stored status and nothing changes, and an
// unknown order is answered with status "none": releasing nothing succeeds.
// Errors: fault.Unavailable on database failure.
func (s *Store) Release(ctx context.Context, orderID uuid.UUID) (inventory.Hold, error) {
	var out inventory.Hold
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		h, err := loadHold(ctx, tx, orderID)
		if fault.Is(err, fault.NotFound, "") {
			out = inventory.Hold{OrderID: orderID, Status: inventory.StatusNone}
			return nil
		}
		if err != nil {
			return err
		}
		var next inventory.HoldStatus
		var query string
		switch h.Status {
		case inventory.StatusHeld:
			next, query = inventory.StatusReleased, `UPDATE stock SET reserved = reserved - $2, updated_at = now()
				WHERE product_id = $1 RETURNING product_id, on_hand, reserved, updated_at, version`
		case inventory.StatusCommitted:
			next, query = inventory.StatusRestocked, `UPDATE stock SET on_hand = on_hand + $2, updated_at = now()
				WHERE product_id = $1 RETURNING product_id, on_hand, reserved, updated_at, version`
		default:
			out = h
			return nil
		}
		for _, l := range h.Lines {
			st, err := scan(tx.QueryRow(ctx, query, l.ProductID, l.Quantity))
			if err != nil {
				return unavailable(err)
			}
			if err := publish(ctx, tx, st); err != nil {
				return err
			}
		}
		out, err = setStatus(ctx, tx, h, next)
		return err
	})
	return out, err
}

// Expire gives back up to limit holds whose expires_at is at or before asOf
// (the database clock when asOf is zero), marks them "expired", and appends
// stock.changed.v1 per product and stock.reservations_expired.v1 per order, in
// one transaction. Due rows are claimed FOR UPDATE SKIP LOCKED, so concurrent
// sweeps (and a concurrent commit or release) never give a hold back twice.
// It returns how many holds it expired; fault.Unavailable on database failure.
func (s *Store) Expire(ctx context.Context, asOf time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 500
	}
	var asOfArg any
	if !asOf.IsZero() {
		asOfArg = asOf
	}
	n := 0
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH due AS (
				SELECT order_id FROM reservations
				WHERE status = 'held' AND expires_at <= COALESCE($1::timestamptz, now())
				ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			UPDATE reservations r SET status = 'expired', updated_at = now()
			FROM due WHERE r.order_id = due.order_id RETURNING r.order_id`, asOfArg, limit)
		if err != nil {
			return unavailable(err)
		}
		orders, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return unavailable(err)
		}
		n = len(orders)
		if n == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `SELECT order_id, product_id, quantity FROM reservation_lines
			WHERE order_id = ANY($1) ORDER BY product_id, order_id`, orders)
		if err != nil {
			return unavailable(err)
		}
		byOrder := map[uuid.UUID][]inventory.Line{}
		var products []inventory.Line // per product, summed, in product order
		for rows.Next() {
			var orderID uuid.UUID
			var l inventory.Line
			if err := rows.Scan(&orderID, &l.ProductID, &l.Quantity); err != nil {
				rows.Close()
				return unavailable(err)
			}
			byOrder[orderID] = append(byOrder[orderID], l)
			if k := len(products) - 1; k >= 0 && products[k].ProductID == l.ProductID {
				products[k].Quantity += l.Quantity
			} else {
				products = append(products, l)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable(err)
		}
		for _, p := range products {
			st, err := scan(tx.QueryRow(ctx, `UPDATE stock SET reserved = reserved - $2, updated_at = now()
				WHERE product_id = $1 RETURNING product_id, on_hand, reserved, updated_at, version`, p.ProductID, p.Quantity))
			if err != nil {
				return unavailable(err)
			}
			if err := publish(ctx, tx, st); err != nil {
				return err
			}
		}
		for _, orderID := range orders {
			data := inventory.ReservationsExpiredData{OrderID: orderID, Lines: byOrder[orderID]}
			if err := outbox.Publish(ctx, tx, inventory.Source, events.ReservationsExpired, orderID.String(), data); err != nil {
				return fault.Internalf("reservations expired event: %w", err)
			}
		}
		return nil
	})
	return n, err
}

// Hold returns the order's reservation with its lines in product order;
// fault.NotFound "not_found" when the order never reserved.
func (s *Store) Hold(ctx context.Context, orderID uuid.UUID) (inventory.Hold, error) {
	var out inventory.Hold
	err := postgres.TxWith(ctx, s.db, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		out, err = readHold(ctx, tx, orderID, false)
		return err
	})
	return out, err
}

// loadHold locks the order's reservation row and reads its lines.
func loadHold(ctx context.Context, tx pgx.Tx, orderID uuid.UUID) (inventory.Hold, error) {
	return readHold(ctx, tx, orderID, true)
}

func readHold(ctx context.Context, tx pgx.Tx, orderID uuid.UUID, lock bool) (inventory.Hold, error) {
	q := `SELECT status, expires_at FROM reservations WHERE order_id = $1`
	if lock {
		q += ` FOR UPDATE`
	}
	h := inventory.Hold{OrderID: orderID}
	var status string
	err := tx.QueryRow(ctx, q, orderID).Scan(&status, &h.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, fault.E(fault.NotFound, fault.CodeNotFound, "no reservation for this order")
	}
	if err != nil {
		return h, unavailable(err)
	}
	h.Status = inventory.HoldStatus(status)
	rows, err := tx.Query(ctx, `SELECT product_id, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY product_id`, orderID)
	if err != nil {
		return h, unavailable(err)
	}
	h.Lines, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (inventory.Line, error) {
		var l inventory.Line
		err := row.Scan(&l.ProductID, &l.Quantity)
		return l, err
	})
	if err != nil {
		return h, unavailable(err)
	}
	return h, nil
}

func setStatus(ctx context.Context, tx pgx.Tx, h inventory.Hold, next inventory.HoldStatus) (inventory.Hold, error) {
	if _, err := tx.Exec(ctx, `UPDATE reservations SET status = $2, updated_at = now() WHERE order_id = $1`,
		h.OrderID, string(next)); err != nil {
		return h, unavailable(err)
	}
	h.Status = next
	return h, nil
}

func sortedLines(lines []inventory.Line) []inventory.Line {
	out := append([]inventory.Line(nil), lines...)
	inventory.SortLines(out)
	return out
}
