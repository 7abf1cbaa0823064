package inventorydb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
// stock change that takes a product's available units (on_hand - reserved)
// to none, or back from none, also appends stock.changed.v1 in that
// transaction (flipped); a change that leaves the product in stock, or out
// of it, appends none, and neither does the stock commit of a held order,
// which leaves available as it was (TestCheckoutWritesStockEventsOnlyWhenAProductSellsOut).
//
// Round trips (docs/performance.md, TestCheckoutRoundTrips): whatever the
// number of lines, a transaction is a few batches (postgres.BatchTx: BEGIN
// rides in the first, COMMIT in the last); every line's stock UPDATE goes in
// one batch, in product-id order, and the outbox rows go with their single
// NOTIFY. A reservation is 2 round trips, a stock commit 2, a release or a
// commit of a hold taken again 3, a settlement batch (Settle) 4.
//
// A checkout reserves only: the hold of a confirmed order is sold later, in
// batches, by Settle (expire-reservations), which asks the orders service
// each due hold's order status. A hold is never given back only because it
// is old: its order may still be pending and be confirmed.

// The SET expressions of the stock moves ($2 the line's quantity).
const (
	setReserve = "reserved = reserved + $2"
	setSell    = "on_hand = on_hand - $2, reserved = reserved - $2" // held units become sold ones
	setRetake  = "on_hand = on_hand - $2"                           // expired units taken again and sold
	setRelease = "reserved = reserved - $2"
	setRestock = "on_hand = on_hand + $2"
)

// errAlreadyReserved: the order's reservation header exists (a repeat, or a
// twin that waited on the unique key until the first committed).
var errAlreadyReserved = errors.New("the order already reserved")

// Reserve holds every line of req in one transaction with conditional updates
// (on_hand - reserved >= quantity), so stock is never oversold. It is
// idempotent by order: a repeat for an order already held or committed answers
// its current state and changes nothing. Errors: fault.Conflict "out_of_stock"
// naming the product (nothing is reserved), fault.Conflict
// "reservation_released" when the order's hold was already given back,
// fault.Unavailable when the database fails.
func (s *Store) Reserve(ctx context.Context, req inventory.HoldRequest) (inventory.Hold, error) {
	lines := sortedLines(req.Lines)
	out, err := s.reserveNew(ctx, req.OrderID, req.TTL, lines)
	if !errors.Is(err, errAlreadyReserved) {
		return out, err
	}
	// A repeat: answer the stored hold, read locked (so the answer is not
	// overtaken by a commit or release in flight) in a transaction of its
	// own that writes nothing: the first one was aborted by the header's
	// unique violation.
	tx, h, err := s.beginLocked(ctx, req.OrderID)
	defer tx.Rollback(ctx)
	if err != nil {
		return h, err
	}
	return h.ReserveAgain()
}

// reserveNew writes a new hold in two round trips: BEGIN, the header and
// every line's conditional stock UPDATE (product-id order), as one batch;
// then the lines, stock.changed.v1 for each product it sold out (flipped),
// their NOTIFY and COMMIT. The header is inserted first without ON CONFLICT,
// so a repeat fails there (23505, errAlreadyReserved) before any stock row is
// locked; a line whose units are not available comes back without a row
// (out_of_stock). Either way the transaction is rolled back: nothing is
// written.
//
// The lines go with the COMMIT, once every line's row is held: a refused
// line's UPDATE matched no row and locked nothing, and the lines' foreign-key
// check (FOR KEY SHARE of each product's row) run after it waited for
// whoever held or was moving that row (another checkout reserving it,
// set-stock deciding, the sweep's sale) while this transaction held its
// later lines' rows, which they move next (product order): a deadlock, seen
// twice in PostgreSQL's log during a storm test (with the sweep, and with
// another reservation), and a refusal answered 503 instead of 409 (TestARefusedReservationWaitsForNoLockOfItsRefusedLine;
// until 2026-12-07 the lines rode in the first batch). On rows this
// transaction holds, the check waits for nobody. A line of a product never
// stocked is refused by its UPDATE (no row), so the check cannot fail.
func (s *Store) reserveNew(ctx context.Context, orderID uuid.UUID, ttl time.Duration, lines []inventory.Line) (inventory.Hold, error) {
	ids, qty := lineArrays(lines)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO reservations (order_id, status, expires_at)
		VALUES ($1, 'held', now() + make_interval(secs => $2)) RETURNING expires_at`, orderID, ttl.Seconds())
	queueMoves(b, lines, setReserve, true)
	tx, br := postgres.BeginBatch(ctx, s.db, b)
	defer tx.Rollback(ctx)
	var expiresAt time.Time
	if err := br.QueryRow().Scan(&expiresAt); err != nil {
		_ = br.Close()
		if postgres.IsUniqueViolation(err, "reservations_pkey") {
			return inventory.Hold{}, errAlreadyReserved
		}
		return inventory.Hold{}, unavailable(err)
	}
	moved, err := readMoves(br, lines, true)
	if err != nil {
		return inventory.Hold{}, err
	}
	evs, err := changedEvents(ctx, flipped(moved, func(i int) int { return -lines[i].Quantity }))
	if err != nil {
		return inventory.Hold{}, err
	}
	w := &pgx.Batch{}
	w.Queue(`INSERT INTO reservation_lines (order_id, product_id, quantity)
		SELECT $1, * FROM unnest($2::uuid[], $3::int[])`, orderID, ids, qty)
	outbox.QueueAll(w, evs...)
	if err := tx.Commit(ctx, w); err != nil {
		return inventory.Hold{}, unavailable(err)
	}
	return inventory.Hold{OrderID: orderID, Status: inventory.StatusHeld, ExpiresAt: expiresAt, Lines: lines}, nil
}

// Commit turns the order's hold into a sale: on_hand and reserved both drop by
// each line's quantity, which leaves available unchanged, so it writes no
// stock.changed.v1 (a hold taken again after its expiry lowers available,
// and writes one when that sells the product out). A hold that expired is
// taken again conditionally and committed directly; when the stock is gone
// that is fault.Conflict "out_of_stock" and nothing changes. Committing twice
// is a no-op answered "committed". Errors: fault.NotFound "not_found" when the
// order never reserved, fault.Conflict "reservation_released" when its hold
// was released (its order ended: inventory.Hold.CanCommit) or it was already
// restocked (cancelled), and nothing changes; fault.Unavailable on database
// failure.
func (s *Store) Commit(ctx context.Context, orderID uuid.UUID) (inventory.Hold, error) {
	tx, h, err := s.beginLocked(ctx, orderID)
	defer tx.Rollback(ctx)
	if err != nil {
		return h, err
	}
	retake, done, err := h.CanCommit()
	if err != nil || done {
		return h, err // nothing to write: the deferred rollback ends the transaction
	}
	if retake {
		// The units were given back: taking them again lowers what is
		// available, which index-product must see.
		moved, err := moveStock(ctx, tx, h.Lines, setRetake, true)
		if err != nil {
			return h, err
		}
		return finish(ctx, tx, h, inventory.StatusCommitted, moved, -1)
	}
	// Held units become sold ones: on_hand and reserved drop together, so
	// available (on_hand - reserved), the only stock figure a consumer
	// shows, is unchanged and no stock.changed.v1 is written
	// (docs/events.md, "What stock.changed.v1 means"). The sale itself is
	// order.placed.v1's. Nothing is read back, so the UPDATEs, the status
	// and COMMIT go in one batch. A line's stock row cannot be missing:
	// reservation_lines.product_id references stock (no cascade) and the
	// hold is locked. Were one missing all the same, the batch would have
	// committed the rest by the time its row count is read: the answer is
	// then an error, and a retried Commit answers "committed".
	b := &pgx.Batch{}
	for _, l := range h.Lines {
		b.Queue(`UPDATE stock SET `+setSell+`, updated_at = now() WHERE product_id = $1`, l.ProductID, l.Quantity).
			Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() != 1 {
					return fmt.Errorf("stock row of product %s missing", l.ProductID)
				}
				return nil
			})
	}
	queueStatus(b, h.OrderID, inventory.StatusCommitted)
	if err := tx.Commit(ctx, b); err != nil {
		return h, unavailable(err)
	}
	h.Status = inventory.StatusCommitted
	return h, nil
}

// Release gives the order's stock back: a held order's units leave reserved
// (status "released"); a committed order's units return on hand (status
// "restocked", for a cancelled order). An expired hold, whose units the
// sweep gave back already, becomes "released" and moves no stock: a release
// follows its order's end, and a released hold is final, so a late commit
// cannot take the stock again (until 2026-12-08 it stayed "expired", and
// could). An order already released or restocked is answered with its stored
// status and nothing changes, and an
// unknown order is answered with status "none": releasing nothing succeeds,
// and stores a void reservation (inventory.StatusVoid), so that a first
// reservation try still on its way when the order's checkout ended holds
// nothing when it lands (Reserve answers it reservation_released). Until
// 2026-12-05 such a try held its units for nobody until the sweep.
//
// The void costs no round trip: its INSERT … ON CONFLICT DO NOTHING rides in
// the batch that begins the transaction and reads the hold locked (the
// insert waits on the key for a reservation being written, so the read sees
// it once it commits); a release of nothing is that batch and COMMIT, one of
// a void that batch alone, and a release of a hold or a sale the stock moves
// and COMMIT after it, as before (TestCheckoutRoundTrips). Errors:
// fault.Unavailable on database failure.
func (s *Store) Release(ctx context.Context, orderID uuid.UUID) (inventory.Hold, error) {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO reservations (order_id, status, expires_at) VALUES ($1, 'void', now())
		ON CONFLICT (order_id) DO NOTHING`, orderID)
	b.Queue(readHoldQuery(true), orderID)
	tx, br := postgres.BeginBatch(ctx, s.db, b)
	defer tx.Rollback(ctx)
	tag, err := br.Exec()
	var h inventory.Hold
	if err == nil {
		h, err = scanHold(br.Query())
	} else {
		err = unavailable(err)
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = unavailable(cerr)
	}
	h.OrderID = orderID
	if err != nil {
		return h, err
	}
	var next inventory.HoldStatus
	var set string
	switch h.Status {
	case inventory.StatusVoid:
		if tag.RowsAffected() == 1 {
			if err := tx.Commit(ctx, nil); err != nil {
				return inventory.Hold{}, unavailable(err)
			}
		}
		return inventory.Hold{OrderID: orderID, Status: inventory.StatusNone}, nil
	case inventory.StatusHeld:
		next, set = inventory.StatusReleased, setRelease
	case inventory.StatusCommitted:
		next, set = inventory.StatusRestocked, setRestock
	case inventory.StatusExpired:
		// The units went back when the hold expired: nothing moves, but the
		// release is final (released), so a commit that lands after it —
		// a run that lost its claim, a try still in flight — is refused
		// rather than re-take the stock for an order that ended.
		return finish(ctx, tx, h, inventory.StatusReleased, nil, 0)
	default:
		return h, nil
	}
	moved, err := moveStock(ctx, tx, h.Lines, set, false)
	if err != nil {
		return h, err
	}
	return finish(ctx, tx, h, next, moved, +1)
}

// Expire gives back up to limit holds whose expires_at is at or before asOf
// whatever their orders' status: tests use it to give holds back, and
// nothing else may — it would give back the held units of confirmed orders,
// to be sold twice (the sweep uses Settle, which asks the orders' status
// first: a pending order's hold may still be confirmed). asOf zero is the database clock. It marks them "expired" and appends
// stock.changed.v1 per product it brings back in stock, in one transaction;
// the expiry itself is no event (docs/events.md). Due rows are
// claimed FOR UPDATE SKIP LOCKED, so concurrent sweeps (and a concurrent
// commit or release) never give a hold back twice.
// It returns how many holds it expired; fault.Unavailable on database failure.
func (s *Store) Expire(ctx context.Context, asOf time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 500
	}
	var asOfArg any
	if !asOf.IsZero() {
		asOfArg = asOf
	}
	// BEGIN and the claim, the lines, the stock UPDATEs, the events and
	// COMMIT: 4 round trips (postgres.BatchTx).
	b := &pgx.Batch{}
	b.Queue(`WITH due AS (
			SELECT order_id FROM reservations
			WHERE status = 'held' AND expires_at <= COALESCE($1::timestamptz, now())
			ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE reservations r SET status = 'expired', updated_at = now()
		FROM due WHERE r.order_id = due.order_id RETURNING r.order_id`, asOfArg, limit)
	tx, br := postgres.BeginBatch(ctx, s.db, b)
	defer tx.Rollback(ctx)
	orders, err := pgx.CollectRows(queryRows(br), pgx.RowTo[uuid.UUID])
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, unavailable(err)
	}
	if len(orders) == 0 {
		return 0, nil // nothing was due: the deferred rollback ends the transaction
	}
	b = &pgx.Batch{}
	b.Queue(`SELECT product_id, quantity FROM reservation_lines
		WHERE order_id = ANY($1) ORDER BY product_id`, orders)
	br = tx.SendBatch(ctx, b)
	var products []inventory.Line // per product, summed, in product order
	var l inventory.Line
	_, err = pgx.ForEachRow(queryRows(br), []any{&l.ProductID, &l.Quantity}, func() error {
		if k := len(products) - 1; k >= 0 && products[k].ProductID == l.ProductID {
			products[k].Quantity += l.Quantity
		} else {
			products = append(products, l)
		}
		return nil
	})
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, unavailable(err)
	}
	moved, err := moveStock(ctx, tx, products, setRelease, false)
	if err != nil {
		return 0, err
	}
	evs, err := changedEvents(ctx, flipped(moved, func(i int) int { return products[i].Quantity }))
	if err != nil {
		return 0, err
	}
	b = &pgx.Batch{}
	outbox.QueueAll(b, evs...)
	if err := tx.Commit(ctx, b); err != nil {
		return 0, unavailable(err)
	}
	return len(orders), nil
}

// Statuses answers the status of each order of ids that the orders service
// knows (order-statuses); an order it does not know is absent. An error means
// nothing is known: the settlement then changes nothing.
type Statuses func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]inventory.OrderStatus, error)

// Settle settles one batch of held holds: up to limit holds older than
// settleAfter (by the database clock), after cur in (created_at, order_id)
// order. It asks statuses for their orders in one call, outside any
// transaction, then in one transaction locks those still held (FOR UPDATE
// SKIP LOCKED: a hold another sweep, a release or a commit has locked is left
// to the next run) and does what inventory.Settle decides for each: a
// confirmed order's hold is sold (on_hand and reserved drop together, status
// committed, no stock.changed.v1: available is unchanged), a failed or
// cancelled order's hold is released, an unknown order's hold past its
// expires_at is expired (both write stock.changed.v1 for a product they
// bring back in stock, and nothing else), and a pending
// order's hold is kept. Each product's stock row moves once, in product-id
// order, so the batch never deadlocks with a reservation. The answer counts
// what it did and says where the next batch starts (Next; Scanned < limit
// when there is none). When statuses fails, nothing changes and the error is
// returned; fault.Unavailable on database failure.
//
// Round trips: the due holds' read, then BEGIN with the locked holds and
// their lines, the stock UPDATEs, and the statuses with the events and
// COMMIT: 4 per batch (postgres.BatchTx), whatever its size.
func (s *Store) Settle(ctx context.Context, cur inventory.SettleCursor, settleAfter time.Duration, limit int, statuses Statuses) (inventory.Settlement, error) {
	var out inventory.Settlement
	if limit <= 0 {
		limit = 500
	}
	// asOf, the database's time before the orders are asked about, is
	// when "past its expiry" is decided: an order unknown to the orders
	// service at the look-up may commit right after it, and its saga then
	// takes the hold as its own; only a hold already expired before the
	// look-up belongs to an order that will never commit (the saga writes
	// its order within SAGA_TIMEOUT, shorter than the hold's TTL). Decided
	// at the lock's time instead, a look-up that took seconds let the sweep
	// expire the hold of an order its saga then confirmed: the units were
	// sold twice.
	var asOf time.Time
	rows, err := s.db.Query(ctx, `SELECT order_id, created_at, now() FROM reservations
		WHERE status = 'held' AND created_at <= now() - make_interval(secs => $1)
		AND (created_at, order_id) > ($2, $3)
		ORDER BY created_at, order_id LIMIT $4`, settleAfter.Seconds(), cur.CreatedAt, cur.OrderID, limit)
	if err != nil {
		return out, unavailable(err)
	}
	var ids []uuid.UUID
	_, err = pgx.ForEachRow(rows, []any{&out.Next.OrderID, &out.Next.CreatedAt, &asOf}, func() error {
		ids = append(ids, out.Next.OrderID)
		return nil
	})
	if err != nil {
		return out, unavailable(err)
	}
	out.Scanned = len(ids)
	if len(ids) == 0 {
		out.Next = cur
		return out, nil
	}
	known, err := statuses(ctx, ids)
	if err != nil {
		return out, err
	}
	// The holds still held, locked, with whether each is past its expiry,
	// and the lines of every hold asked about (lines never change).
	b := &pgx.Batch{}
	b.Queue(`SELECT order_id, expires_at <= $2 FROM reservations
		WHERE order_id = ANY($1) AND status = 'held' ORDER BY order_id FOR UPDATE SKIP LOCKED`, ids, asOf)
	b.Queue(`SELECT order_id, product_id, quantity FROM reservation_lines
		WHERE order_id = ANY($1) ORDER BY product_id, order_id`, ids)
	tx, br := postgres.BeginBatch(ctx, s.db, b)
	defer tx.Rollback(ctx)
	outcome := map[uuid.UUID]inventory.Outcome{}
	var orderID uuid.UUID
	var past bool
	_, err = pgx.ForEachRow(queryRows(br), []any{&orderID, &past}, func() error {
		st, ok := known[orderID]
		if o := inventory.Settle(st, ok, past); o != inventory.Keep {
			outcome[orderID] = o
		}
		return nil
	})
	type move struct {
		product        uuid.UUID
		sold, released int
	}
	var moves []move // per product, in product order
	var l inventory.Line
	if err == nil {
		_, err = pgx.ForEachRow(queryRows(br), []any{&orderID, &l.ProductID, &l.Quantity}, func() error {
			o, ok := outcome[orderID]
			if !ok {
				return nil
			}
			if k := len(moves) - 1; k < 0 || moves[k].product != l.ProductID {
				moves = append(moves, move{product: l.ProductID})
			}
			if o == inventory.Sell {
				moves[len(moves)-1].sold += l.Quantity
			} else {
				moves[len(moves)-1].released += l.Quantity
			}
			return nil
		})
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return out, unavailable(err)
	}
	if len(outcome) == 0 {
		return out, nil // every hold stays held: the deferred rollback ends the transaction
	}
	// Sold units leave on_hand and reserved; released ones leave reserved.
	b = &pgx.Batch{}
	products := make([]inventory.Line, len(moves))
	for i, m := range moves {
		products[i] = inventory.Line{ProductID: m.product}
		b.Queue(`UPDATE stock SET on_hand = on_hand - $2, reserved = reserved - $2 - $3, updated_at = now()
			WHERE product_id = $1 RETURNING product_id, on_hand, reserved, updated_at, version`, m.product, m.sold, m.released)
	}
	moved, err := readMoves(tx.SendBatch(ctx, b), products, false)
	if err != nil {
		return out, err
	}
	// Only a release changes available (a product only sold gets no
	// event), and only one that brings a sold-out product back is told.
	evs, err := changedEvents(ctx, flipped(moved, func(i int) int { return moves[i].released }))
	if err != nil {
		return out, err
	}
	settledIDs := make([]uuid.UUID, 0, len(outcome))
	next := make([]string, 0, len(outcome))
	for _, id := range ids { // in the order read
		o, ok := outcome[id]
		if !ok {
			continue
		}
		status := inventory.StatusCommitted
		switch o {
		case inventory.Sell:
			out.Settled++
		case inventory.Release:
			status = inventory.StatusReleased
			out.Released++
		case inventory.Expire:
			status = inventory.StatusExpired
			out.Expired++
		}
		settledIDs, next = append(settledIDs, id), append(next, string(status))
	}
	b = &pgx.Batch{}
	b.Queue(`UPDATE reservations r SET status = n.status, updated_at = now()
		FROM unnest($1::uuid[], $2::text[]) AS n(order_id, status) WHERE r.order_id = n.order_id`, settledIDs, next)
	outbox.QueueAll(b, evs...)
	if err := tx.Commit(ctx, b); err != nil {
		return inventory.Settlement{Scanned: out.Scanned, Next: out.Next}, unavailable(err)
	}
	return out, nil
}

// queryRows reads the next result of br as rows (their error, if any, is
// the rows').
func queryRows(br pgx.BatchResults) pgx.Rows {
	rows, _ := br.Query()
	return rows
}

// Hold returns the order's reservation with its lines in product order
// (status void, no lines, for an order released before it reserved);
// fault.NotFound "not_found" when nothing was stored for the order,
// fault.Unavailable when the database fails.
func (s *Store) Hold(ctx context.Context, orderID uuid.UUID) (inventory.Hold, error) {
	var out inventory.Hold
	err := postgres.TxWith(ctx, s.db, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		out, err = readHold(ctx, tx, orderID, false)
		return err
	})
	return out, txErr(err)
}

// beginLocked begins a transaction with the order's reservation row locked
// and read with its lines (readHoldQuery), in one round trip. The caller
// defers tx.Rollback whatever the error.
func (s *Store) beginLocked(ctx context.Context, orderID uuid.UUID) (*postgres.BatchTx, inventory.Hold, error) {
	b := &pgx.Batch{}
	b.Queue(readHoldQuery(true), orderID)
	tx, br := postgres.BeginBatch(ctx, s.db, b)
	h, err := scanHold(br.Query())
	if cerr := br.Close(); err == nil && cerr != nil {
		err = unavailable(cerr)
	}
	h.OrderID = orderID
	return tx, h, err
}

func readHold(ctx context.Context, tx pgx.Tx, orderID uuid.UUID, lock bool) (inventory.Hold, error) {
	h, err := scanHold(tx.Query(ctx, readHoldQuery(lock), orderID))
	h.OrderID = orderID
	return h, err
}

// readHoldQuery reads a hold ($1 its order) with its lines in product order,
// the reservation row locked when lock is true.
func readHoldQuery(lock bool) string {
	q := `SELECT r.status, r.expires_at, l.product_id, l.quantity
		FROM reservations r LEFT JOIN reservation_lines l ON l.order_id = r.order_id
		WHERE r.order_id = $1 ORDER BY l.product_id`
	if lock {
		q += ` FOR UPDATE OF r`
	}
	return q
}

// scanHold reads readHoldQuery's rows and closes them.
func scanHold(rows pgx.Rows, err error) (inventory.Hold, error) {
	var h inventory.Hold
	if err != nil {
		return h, unavailable(err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		found = true
		var status string
		var product *uuid.UUID
		var quantity *int
		if err := rows.Scan(&status, &h.ExpiresAt, &product, &quantity); err != nil {
			return h, unavailable(err)
		}
		h.Status = inventory.HoldStatus(status)
		if product != nil {
			h.Lines = append(h.Lines, inventory.Line{ProductID: *product, Quantity: *quantity})
		}
	}
	if err := rows.Err(); err != nil {
		return h, unavailable(err)
	}
	if !found {
		return h, fault.E(fault.NotFound, fault.CodeNotFound, "no reservation for this order")
	}
	return h, nil
}

// queueStatus queues the UPDATE that sets the order's hold status.
func queueStatus(b *pgx.Batch, orderID uuid.UUID, next inventory.HoldStatus) {
	b.Queue(`UPDATE reservations SET status = $2, updated_at = now() WHERE order_id = $1`, orderID, string(next))
}

// finish sets the hold's status, appends the stock changes' events and
// commits, in one round trip. moved are the rows of h.Lines after the move,
// whose available units it changed by sign × each line's quantity.
func finish(ctx context.Context, tx *postgres.BatchTx, h inventory.Hold, next inventory.HoldStatus, moved []inventory.Stock, sign int) (inventory.Hold, error) {
	evs, err := changedEvents(ctx, flipped(moved, func(i int) int { return sign * h.Lines[i].Quantity }))
	if err != nil {
		return h, err
	}
	b := &pgx.Batch{}
	queueStatus(b, h.OrderID, next)
	outbox.QueueAll(b, evs...)
	if err := tx.Commit(ctx, b); err != nil {
		return h, unavailable(err)
	}
	h.Status = next
	return h, nil
}

// appendChanged queues stock.changed.v1 for every row of moved whose product
// went out of stock or came back (flipped) into b (one INSERT and one
// NOTIFY, outbox.QueueAll) and sends b on tx: the events are written in the
// transaction of the change and go with the caller's other writes in one
// round trip.
func appendChanged(ctx context.Context, tx pgx.Tx, b *pgx.Batch, moved []inventory.Stock, delta func(i int) int) error {
	evs, err := changedEvents(ctx, flipped(moved, delta))
	if err != nil {
		return err
	}
	outbox.QueueAll(b, evs...)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return unavailable(err)
	}
	return nil
}

// flipped returns the rows of moved whose product went out of stock or came
// back: the change moved row i's available units by delta(i), so they were
// moved[i].Available() - delta(i) before it. Only these get
// stock.changed.v1 (docs/events.md, "What stock.changed.v1 means"): its
// one consumer shows whether a product is in stock, and a change that
// leaves that as it was tells it nothing.
func flipped(moved []inventory.Stock, delta func(i int) int) []inventory.Stock {
	var out []inventory.Stock
	for i, st := range moved {
		if now := st.Available(); (now > 0) != (now-delta(i) > 0) {
			out = append(out, st)
		}
	}
	return out
}

// changedEvents builds stock.changed.v1 for each row of changed.
func changedEvents(ctx context.Context, changed []inventory.Stock) ([]events.Envelope, error) {
	evs := make([]events.Envelope, 0, len(changed))
	for _, st := range changed {
		ev, err := events.New(ctx, inventory.Source, events.StockChanged, st.ProductID.String(), inventory.ViewOf(st))
		if err != nil {
			return nil, fault.Internalf("stock event: %w", err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// moveStock changes the stock of every line in one batch (queueMoves) and
// returns the changed rows in product order (readMoves).
func moveStock(ctx context.Context, tx *postgres.BatchTx, lines []inventory.Line, set string, conditional bool) ([]inventory.Stock, error) {
	b := &pgx.Batch{}
	queueMoves(b, lines, set, conditional)
	return readMoves(tx.SendBatch(ctx, b), lines, conditional)
}

// queueMoves queues one UPDATE per line changing its stock ($1 its product,
// $2 its quantity in set, the SET expressions), only where the available
// units cover the line when conditional, each returning the changed row.
// The per-line UPDATEs are simple primary-key statements, cheap to plan;
// PostgreSQL runs a batch's statements in order, so the stock rows are
// locked in the lines' product-id order and two transactions moving the same
// products never deadlock.
func queueMoves(b *pgx.Batch, lines []inventory.Line, set string, conditional bool) {
	q := `UPDATE stock SET ` + set + `, updated_at = now() WHERE product_id = $1`
	if conditional {
		q += ` AND on_hand - reserved >= $2`
	}
	q += ` RETURNING product_id, on_hand, reserved, updated_at, version`
	for _, l := range lines {
		b.Queue(q, l.ProductID, l.Quantity)
	}
}

// readMoves reads the rows of queueMoves' statements, the next results of
// br, then closes br (what was queued after them is checked there). When
// conditional and a line comes back without a row (its units are not
// available, or it has no stock row), the answer is fault.Conflict
// "out_of_stock" naming the first such product: the caller's transaction
// must then roll back (nothing has changed once it has). The refusal wins
// over an error of a later statement.
func readMoves(br pgx.BatchResults, lines []inventory.Line, conditional bool) ([]inventory.Stock, error) {
	defer br.Close()
	moved := make([]inventory.Stock, 0, len(lines))
	var refusal error
	for _, l := range lines {
		st, err := scan(br.QueryRow())
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if refusal == nil {
				refusal = inventory.ErrOutOfStock(l.ProductID)
			}
		case err != nil:
			return nil, unavailable(err)
		default:
			moved = append(moved, st)
		}
	}
	err := br.Close()
	switch {
	case refusal != nil && !conditional:
		return nil, unavailable(fmt.Errorf("stock rows missing: %w", refusal))
	case refusal != nil:
		return nil, refusal
	case err != nil:
		return nil, unavailable(err)
	}
	return moved, nil
}

func lineArrays(lines []inventory.Line) ([]uuid.UUID, []int32) {
	ids, qty := make([]uuid.UUID, len(lines)), make([]int32, len(lines))
	for i, l := range lines {
		ids[i], qty[i] = l.ProductID, int32(l.Quantity)
	}
	return ids, qty
}

func sortedLines(lines []inventory.Line) []inventory.Line {
	out := append([]inventory.Line(nil), lines...)
	inventory.SortLines(out)
	return out
}

// SweepCursor returns where the last sweep stopped, the zero cursor (the
// oldest due hold) when it went through them all or none ran yet.
func (s *Store) SweepCursor(ctx context.Context) (inventory.SettleCursor, error) {
	var cur inventory.SettleCursor
	err := s.db.QueryRow(ctx, `SELECT created_at, order_id FROM sweep_cursor`).Scan(&cur.CreatedAt, &cur.OrderID)
	if errors.Is(err, pgx.ErrNoRows) {
		return inventory.SettleCursor{}, nil
	}
	if err != nil {
		return cur, unavailable(err)
	}
	return cur, nil
}

// SaveSweepCursor records where the next sweep starts; the zero cursor
// starts it at the oldest due hold.
func (s *Store) SaveSweepCursor(ctx context.Context, cur inventory.SettleCursor) error {
	var err error
	if cur == (inventory.SettleCursor{}) {
		_, err = s.db.Exec(ctx, `DELETE FROM sweep_cursor`)
	} else {
		_, err = s.db.Exec(ctx, `INSERT INTO sweep_cursor (created_at, order_id) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, order_id = excluded.order_id`, cur.CreatedAt, cur.OrderID)
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// EndedRetention is how long a reservation that ended (released, expired,
// restocked, void) is kept after its last change before Prune deletes it.
// It outlasts every call that may still name its order: a checkout's
// (SAGA_TIMEOUT, exec_timeout), the recovery of a pending order (at most
// GIVE_UP_AFTER, 20 h: saga.MaxGiveUpAfter) and a replayed Idempotency-Key
// (kept 24 h at least), so the void record that refuses a late reservation
// and the released one that refuses a late commit are gone only when
// nothing can come late any more. A committed reservation is never deleted:
// its order can be cancelled at any time, and that release must find the
// hold to restock its units.
const EndedRetention = 30 * 24 * time.Hour

// PruneBatches is the most batches of postgres.DeleteBatch reservations one
// Prune deletes: the sweep prunes after it settles, each minute, so a
// backlog (the first run after the upgrade) goes over several runs instead
// of holding up one.
const PruneBatches = 2

// Prune deletes the reservations that ended (released, expired, restocked,
// void) last changed more than olderThan ago, with their lines (ON DELETE
// CASCADE), in batches of postgres.DeleteBatch, oldest first, at most
// maxBatches of them (0: until none is left), reading them through their
// index (migration 0009), and reports how many went. Held and committed
// reservations are never deleted (EndedRetention). Errors: fault.Unavailable
// on database failure, with what was deleted before it.
func (s *Store) Prune(ctx context.Context, olderThan time.Duration, maxBatches int) (int64, error) {
	n, err := postgres.DeleteBatches(ctx, s.db, maxBatches, `DELETE FROM reservations WHERE ctid = ANY(ARRAY(SELECT ctid
		FROM reservations WHERE status IN ('released', 'expired', 'restocked', 'void')
		AND updated_at < now() - make_interval(secs => $1) ORDER BY updated_at LIMIT $2))`, olderThan.Seconds())
	if err != nil {
		return n, unavailable(err)
	}
	return n, nil
}
