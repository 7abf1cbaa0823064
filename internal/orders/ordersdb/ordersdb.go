// Package ordersdb stores orders, their lines, their timeline, the saga's
// state, the idempotency keys of checkouts and the outbox in the orders
// service's own PostgreSQL database. A status change is decided by the domain
// (orders.Order.Confirm, Fail, Cancel) under the row lock Update holds, and
// written with its timeline entry, its event, the saga's state and the
// checkout it settles in ONE transaction; no remote call ever runs inside one.
package ordersdb

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the orders database's versioned migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrationFiles, "migrations") // cannot fail: the directory is embedded
	return sub
}

// KeyTTL is how long an idempotency key is kept (at least 24 h, as promised).
const KeyTTL = 24 * time.Hour

// AbandonedAfter is when a key that has no order and no settled checkout may
// be claimed again. Create writes a key together with its order, so such a key
// is one claimed by an earlier version that died before writing the order.
const AbandonedAfter = time.Minute

// Store reads and writes orders. It is safe for concurrent use.
type Store struct {
	db *pgxpool.Pool
}

// New returns a store over pool, whose database has Migrations applied.
func New(pool *pgxpool.Pool) *Store { return &Store{db: pool} }

func unavailable(err error) error {
	return fault.Wrap(fmt.Errorf("orders database: %w", err), fault.Unavailable, fault.CodeUnavailable, "orders temporarily unavailable")
}

// Outcomes of CheckKey and Create for a key that is not free.
var (
	ErrKeyReused     = fault.E(fault.Conflict, fault.CodeIdempotencyKeyReused, "this Idempotency-Key was used with a different request")
	ErrKeyInProgress = fault.E(fault.Conflict, fault.CodeRequestInProgress, "a request with this Idempotency-Key is still in progress; retry later")
	// ErrKeyTaken is Create's answer when another request holds the key:
	// nothing was written, and CheckKey tells what the caller answers.
	ErrKeyTaken = errors.New("ordersdb: the idempotency key is held by another request")
)

// keyFree is the condition under which an existing key may be taken anew:
// expired, or abandoned (no order, no settled checkout, older than
// AbandonedAfter). CheckKey reads it and Create deletes such a key before
// inserting its own; $3 is AbandonedAfter in seconds.
const keyFree = `(expires_at < now() OR (order_id IS NULL AND settled_status IS NULL
	AND created_at < now() - $3::float8 * interval '1 second'))`

// CheckKey reads (userID, key) for a request whose canonical hash is hash. It
// returns (nil, nil) when the key is free — absent, expired or abandoned — and
// the caller may write its order with it (Create); the settled checkout
// (Replayed, the order as it was answered) when the same request already
// finished; the order's current pending view (Replayed) when the same request
// was answered pending (202) and no request drives its saga any longer (its
// lease ran out or was released: ReleaseLease; or a recovery run has claimed
// the order, attempts > 0, which it does only once the order is RecoverAfter
// old, long after its request ended), so a retry of a 202 is answered 202
// again rather than request_in_progress until recovery ends the order, also
// while a recovery run drives it; ErrKeyReused when the key was used with
// another request; and, after waiting up to wait for a running request with
// the key to finish, ErrKeyInProgress. It only reads: one round trip, no commit (two for a
// replay, which reads the order).
func (s *Store) CheckKey(ctx context.Context, userID uuid.UUID, key, hash string, wait time.Duration) (*orders.Checkout, error) {
	deadline := time.Now().Add(wait)
	for {
		var free, idle bool
		var gotHash string
		var orderID *uuid.UUID
		var settled settlement
		err := s.db.QueryRow(ctx, `SELECT `+keyFree+`, request_hash, order_id, settled_status, settled_reason, settled_detail, settled_at,
				coalesce((SELECT s.lease_until < now() OR s.attempts > 0 FROM order_sagas s WHERE s.order_id = idempotency_keys.order_id), false)
			FROM idempotency_keys WHERE user_id = $1 AND key = $2`, userID, key, AbandonedAfter.Seconds()).
			Scan(&free, &gotHash, &orderID, &settled.status, &settled.reason, &settled.detail, &settled.at, &idle)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, nil
		case err != nil:
			return nil, unavailable(err)
		case free:
			return nil, nil
		case gotHash != hash:
			return nil, ErrKeyReused
		case settled.status != nil && orderID != nil:
			c, err := s.settledCheckout(ctx, *orderID, settled)
			if c != nil {
				c.Replayed = true
			}
			return c, err
		case orderID != nil && idle:
			if c, err := s.pendingCheckout(ctx, *orderID); err != nil || c != nil {
				return c, err
			}
			// It ended since the key was read, and settled its key in the
			// same transaction: read the key again (below).
		}
		if time.Now().After(deadline) {
			return nil, ErrKeyInProgress
		}
		select {
		case <-ctx.Done():
			return nil, ErrKeyInProgress
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// settlement is the checkout an idempotency key was settled with: the order's
// status, reason and updated_at when it was answered, and the detail of the
// change that ended it. Nil fields: not settled yet.
type settlement struct {
	status *orders.Status
	reason *string
	detail *string
	at     *time.Time
}

// settledCheckout rebuilds the checkout a key was settled with: the order
// (whose lines, total and address never change) as it stood then.
func (s *Store) settledCheckout(ctx context.Context, orderID uuid.UUID, st settlement) (*orders.Checkout, error) {
	o, err := s.Get(ctx, orderID)
	if err != nil {
		return nil, err
	}
	o.Status, o.Reason, o.UpdatedAt = *st.status, *st.reason, st.at.UTC()
	return &orders.Checkout{Order: o, Detail: *st.detail}, nil
}

// SettledCheckout is the checkout the idempotency key that placed order
// orderID was settled with: what a replay of that key answers, whoever
// ended the order, but as a live answer (Replayed false). Nil when the order
// was placed without a key, or its key is not settled yet.
func (s *Store) SettledCheckout(ctx context.Context, orderID uuid.UUID) (*orders.Checkout, error) {
	var settled settlement
	err := s.db.QueryRow(ctx, `SELECT settled_status, settled_reason, settled_detail, settled_at
		FROM idempotency_keys WHERE order_id = $1 AND settled_status IS NOT NULL LIMIT 1`, orderID).
		Scan(&settled.status, &settled.reason, &settled.detail, &settled.at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, unavailable(err)
	}
	return s.settledCheckout(ctx, orderID, settled)
}

// pendingCheckout is the replay of a checkout answered pending whose saga no
// request drives: the order as it stands now, nil when it is no longer
// pending (then its key is settled, and replayed as settled).
func (s *Store) pendingCheckout(ctx context.Context, orderID uuid.UUID) (*orders.Checkout, error) {
	o, err := s.Get(ctx, orderID)
	if err != nil {
		return nil, err
	}
	if o.Status != orders.Pending {
		return nil, nil
	}
	return &orders.Checkout{Order: o, Replayed: true}, nil
}

// ReleaseLease ends the lease of the saga of a pending order whose request
// stops driving it (the checkout is answered 202): from then on a retry with
// its key replays the pending order (CheckKey) rather than wait for a request
// that has finished. Recovery still claims it only once it is RecoverAfter
// old (ClaimStale). Only the lease Create wrote is ended: a saga recovery
// has claimed since (attempts > 0) keeps its lease.
func (s *Store) ReleaseLease(ctx context.Context, orderID uuid.UUID) error {
	if _, err := s.db.Exec(ctx, `UPDATE order_sagas SET lease_until = now()
		WHERE order_id = $1 AND payment_token IS NOT NULL AND attempts = 0 AND lease_until > now()`, orderID); err != nil {
		return unavailable(err)
	}
	return nil
}

// RenewLease extends the lease Create wrote for the request that placed
// order orderID, and that still drives its saga, to lease from now (never
// shortening it): the request's heartbeat, so that its lease can be short and
// a request that dies leaves its key to be replayed soon (CheckKey). It
// reports whether the lease is still the request's: false once the order has
// left pending (its lease is then the decision's, Update) or a recovery run
// has claimed it (attempts > 0: ClaimStale's lease), and nothing is changed.
// fault.Unavailable when the database fails.
func (s *Store) RenewLease(ctx context.Context, orderID uuid.UUID, lease time.Duration) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE order_sagas SET lease_until = greatest(lease_until, now() + $2::float8 * interval '1 second')
		WHERE order_id = $1 AND payment_token IS NOT NULL AND attempts = 0`, orderID, lease.Seconds())
	if err != nil {
		return false, unavailable(err)
	}
	return tag.RowsAffected() == 1, nil
}

// Saga is the persisted state a saga driver resumes from.
type Saga struct {
	Order        orders.Order
	PaymentToken string // empty once the saga has ended
	FromCart     bool
	// Skipped names the cart lines pricing left out (orders.PriceCart),
	// which Create's order.created entry names; it is not stored otherwise
	// (LoadSaga leaves it nil).
	Skipped      []uuid.UUID
	Compensation orders.Compensation
	Attempts     int
	// CartOwed: the order is confirmed and its lines are still to be taken
	// out of its cart (orders.Change.CartOwed; RecordCartSettled settles it).
	CartOwed bool
	// Age is how long ago the order was created, by the database's clock
	// (LoadSaga; as ClaimStale's RecoverAfter is); 0 for a saga just written.
	Age time.Duration
	// InStatus is how long ago the order took its status (updated_at), by
	// the database's clock: for a confirmed order, the time since its
	// confirmation, which an owed cart removal's give-up counts from.
	InStatus time.Duration
}

// NotWritten reports whether Create's error err says the order is certainly
// not written: every error but a *postgres.Doubt (the batch went out and its
// answer did not come back), which Settle ends. The batch never went out (no
// connection could be had, from PostgreSQL or from a pool whose connections
// were all taken), or PostgreSQL answered an error and rolled it back.
func NotWritten(err error) bool {
	var d *postgres.Doubt
	return !errors.As(err, &d)
}

// Placement is what Create writes for a new checkout. Named fields, not
// positional arguments: the payment token, the key and the request hash are
// all strings, and a call that swapped two of them would compile and store
// each in the other's column.
type Placement struct {
	// Order is the new pending order, with its lines.
	Order orders.Order
	// PaymentToken is the processor's token the saga charges.
	PaymentToken string
	// FromCart: the order is the caller's cart (its lines leave the cart once
	// it is confirmed).
	FromCart bool
	// Key is the caller's Idempotency-Key; "" when none was sent (no key is
	// written, and RequestHash is not used).
	Key string
	// RequestHash is the fingerprint of the canonical request
	// (orders.PlaceRequest.Hash), stored with Key to tell a replay from
	// another request (CheckKey).
	RequestHash string
	// Lease is how long from now the saga is the placing request's to drive
	// (RenewLease extends it).
	Lease time.Duration
	// Skipped names the cart lines pricing left out of a cart order
	// (orders.PriceCart), which the order.created entry names.
	Skipped []uuid.UUID
}

// Create writes a new pending order, its lines, its saga state (leased to the
// caller until p.Lease from now), its first timeline entry and, when p.Key is
// not empty, the caller's idempotency key (with p.RequestHash, kept KeyTTL)
// linked to the order — all in one batch, which PostgreSQL runs as one
// implicit transaction: one round trip, one commit. A free key (expired or
// abandoned, see CheckKey) is taken anew. A key held by another request —
// settled, running, or being written right now (the unique index makes this
// batch wait for that request's transaction) — is ErrKeyTaken, and nothing
// is written. When the batch went out and its answer did not come back (a
// deadline, a broken connection), the order may be written or not: Settle
// the error before reading whether it is. p.Skipped names the cart lines
// pricing left out of a cart order (orders.PriceCart): the order.created
// entry says so, naming their products, so that the owner reading the
// timeline sees why the order holds fewer lines than the cart did.
func (s *Store) Create(ctx context.Context, p Placement) error {
	o, key := p.Order, p.Key
	// A field left out compiles; these would change the order's handling
	// silently (every replay a reuse; the order recovery's while the
	// request drives it), so they are the caller's defect, refused here.
	if key != "" && p.RequestHash == "" {
		return fault.Internalf("create order %s: an idempotency key without its request hash", o.ID)
	}
	if p.Lease <= 0 {
		return fault.Internalf("create order %s: lease %s, want a positive one", o.ID, p.Lease)
	}
	addr, err := json.Marshal(o.ShippingAddress)
	if err != nil {
		return fault.Internalf("encode address: %w", err)
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO orders (id, user_id, status, reason, total_amount, currency, shipping_address, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
		o.ID, o.UserID, o.Status, o.Reason, o.Total.Amount, o.Total.Currency, addr, o.CreatedAt)
	if key != "" {
		// After the order (the key references it), before the rest: a
		// request that loses the key stops here.
		b.Queue(`DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND `+keyFree,
			o.UserID, key, AbandonedAfter.Seconds())
		b.Queue(`INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, expires_at)
			VALUES ($1, $2, $3, $4, now() + $5::float8 * interval '1 second')`,
			o.UserID, key, p.RequestHash, o.ID, KeyTTL.Seconds())
	}
	for i, l := range o.Items {
		b.Queue(`INSERT INTO order_items (order_id, position, product_id, quantity, unit_amount)
			VALUES ($1, $2, $3, $4, $5)`, o.ID, i, l.ProductID, l.Quantity, l.UnitPrice.Amount)
	}
	b.Queue(`INSERT INTO order_sagas (order_id, payment_token, from_cart, lease_until, traceparent)
		VALUES ($1, $2, $3, now() + $4::float8 * interval '1 second', $5)`, o.ID, p.PaymentToken, p.FromCart, p.Lease.Seconds(), traceparent(ctx))
	created := fmt.Sprintf("%d line(s), total %d %s", len(o.Items), o.Total.Amount, o.Total.Currency)
	if len(p.Skipped) > 0 {
		ids := make([]string, len(p.Skipped))
		for i, id := range p.Skipped {
			ids[i] = id.String()
		}
		created += fmt.Sprintf("; %d cart line(s) skipped, their products no longer for sale: %s", len(p.Skipped), strings.Join(ids, ", "))
	}
	queueNotes(ctx, b, o.ID, Note{Step: orders.StepCreated, Outcome: orders.StepOK, Detail: created})
	err = postgres.SendBatch(ctx, s.db, b)
	switch {
	case key != "" && postgres.IsUniqueViolation(err, "idempotency_keys_pkey"):
		return ErrKeyTaken
	case err != nil:
		return unavailable(err)
	}
	return nil
}

// Settle ends the doubt a failed write leaves about its outcome
// (postgres.Settle): once it returns nil, a read of what Create would have
// written tells whether it was. nil at once for an error that leaves no
// doubt; an error while the database cannot tell.
func (s *Store) Settle(ctx context.Context, err error) error { return postgres.Settle(ctx, s.db, err) }

// send runs the statements of b on tx in one round trip.
func send(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Note is a timeline entry. A saga step's outcome is known only after its
// remote call, which never runs inside a transaction, so the saga keeps the
// notes of a run and writes them with the order's next change (Update) or,
// when the run ends without one, with Record. At is when it happened (zero:
// when it is written).
type Note struct {
	At      time.Time
	Step    string
	Outcome string // one of the orders.Step* outcomes
	Detail  string
}

// Record appends notes to an order's timeline, in order, in one transaction
// (and one round trip) of their own. It first locks the order's row, as every
// other writer of its timeline does (Update's locked read, UpdateKnown's
// UPDATE), so an order's entries draw their seq in the order they commit: a
// client paging the timeline by seq (Timeline's cursor) never skips an entry
// that committed after a later one (TestTimelineEntriesCommitInSeqOrder).
func (s *Store) Record(ctx context.Context, orderID uuid.UUID, notes ...Note) error {
	return s.record(ctx, orderID, nil, notes)
}

// RecordCartSettled is Record for a run that settled the removal a
// confirmed cart order's confirmation left owed (Change.CartOwed) — took its
// lines out of the cart, or gave up on it: in the same transaction it clears
// it, so recovery no longer claims the order for it. cart are the entries
// that say how it was settled: written only when this call's write is the
// one that clears it, so that two runs that both settled it (the first's
// claim lost just after it checked it) write them once. notes are written
// in any case, before them.
func (s *Store) RecordCartSettled(ctx context.Context, orderID uuid.UUID, cart []Note, notes ...Note) error {
	return s.record(ctx, orderID, cart, notes)
}

// RecordUnlessWritten is Record — RecordCartSettled when cart holds entries
// — for a run whose notes doubted went out with a write of the order whose
// answer was lost (a *postgres.Doubt, which Settle has ended since): it may
// have committed them, or not. Each of them is written only when the order's
// timeline does not hold it already (the same At, step, outcome and
// detail: the write committed it), so it is written once either way; a
// doubted note without At cannot be told and is written. notes follow, in
// any case, then cart as RecordCartSettled writes them. One transaction, one
// round trip, as Record.
func (s *Store) RecordUnlessWritten(ctx context.Context, orderID uuid.UUID, doubted, cart []Note, notes ...Note) error {
	return s.record(ctx, orderID, cart, notes, doubted...)
}

// record writes notes (doubted ones unless written) and, when cart holds
// entries, settles the owed cart removal, writing cart only if this call
// settled it.
func (s *Store) record(ctx context.Context, orderID uuid.UUID, cart, notes []Note, doubted ...Note) error {
	if len(notes) == 0 && len(doubted) == 0 && len(cart) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT 1 FROM orders WHERE id = $1 FOR NO KEY UPDATE`, orderID)
	queueNotesUnlessWritten(ctx, b, orderID, doubted)
	queueNotes(ctx, b, orderID, notes...)
	// The lock on the order's row above orders two runs' writes: the later
	// one's UPDATE finds the removal settled, and writes no entry.
	queueNotesSelect(ctx, b, orderID,
		`WITH settled AS (UPDATE order_sagas SET cart_owed = false, updated_at = now() WHERE order_id = $1 AND cart_owed RETURNING 1) `,
		`WHERE EXISTS (SELECT 1 FROM settled)`, cart)
	return postgres.Tx(ctx, s.db, func(tx pgx.Tx) error { return send(ctx, tx, b) })
}

// queueNotes adds the timeline entries to b, in order, as one INSERT
// whatever their number (one row each: VALUES lists its rows in order, and
// their seq is drawn in that order). Like every timeline entry, each records
// the trace id of ctx's span (empty outside any trace): a saga run's notes are
// written in the run's own context. Nothing is queued for no notes.
func queueNotes(ctx context.Context, b *pgx.Batch, orderID uuid.UUID, notes ...Note) {
	if len(notes) == 0 {
		return
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO order_events (order_id, at, step, outcome, detail, trace_id) VALUES `)
	args := noteRows(&q, orderID, traceID(ctx), notes, func(_, p int) string {
		return fmt.Sprintf("($1, coalesce($%d::timestamptz, clock_timestamp()), $%d, $%d, $%d, $2)", p+1, p+2, p+3, p+4)
	})
	b.Queue(q.String(), args...)
}

// queueNotesUnlessWritten is queueNotes for notes of which any may be in
// the order's timeline already (RecordUnlessWritten): one INSERT of those
// that are not, in order.
func queueNotesUnlessWritten(ctx context.Context, b *pgx.Batch, orderID uuid.UUID, notes []Note) {
	queueNotesSelect(ctx, b, orderID, "", `WHERE NOT EXISTS (SELECT 1 FROM order_events e WHERE e.order_id = $1 AND e.at = v.at
			AND e.step = v.step AND e.outcome = v.outcome AND e.detail = v.detail)`, notes)
}

// queueNotesSelect adds to b one INSERT of those notes, in order, that where
// (a condition on each, v, whose $1 is orderID) keeps, after with (a WITH
// clause, or ""). Nothing is queued for no notes.
func queueNotesSelect(ctx context.Context, b *pgx.Batch, orderID uuid.UUID, with, where string, notes []Note) {
	if len(notes) == 0 {
		return
	}
	var q strings.Builder
	q.WriteString(with)
	q.WriteString(`INSERT INTO order_events (order_id, at, step, outcome, detail, trace_id)
		SELECT $1, coalesce(v.at, clock_timestamp()), v.step, v.outcome, v.detail, $2 FROM (VALUES `)
	args := noteRows(&q, orderID, traceID(ctx), notes, func(i, p int) string {
		return fmt.Sprintf("(%d, $%d::timestamptz, $%d::text, $%d::text, $%d::text)", i, p+1, p+2, p+3, p+4)
	})
	q.WriteString(`) v (n, at, step, outcome, detail)
		`)
	q.WriteString(where)
	q.WriteString(`
		ORDER BY v.n`)
	b.Queue(q.String(), args...)
}

// noteRows writes to q one VALUES row per note, comma-separated, as row
// gives it for the note's index i and p, the number of arguments before the
// note's four ($p+1 its time, NULL when zero; $p+2..$p+4 its step, outcome
// and detail), and returns the arguments: orderID ($1), traceID ($2), then
// each note's four. queueNotes and queueNotesSelect share it, so their notes
// are bound alike.
func noteRows(q *strings.Builder, orderID uuid.UUID, traceID string, notes []Note, row func(i, p int) string) []any {
	args := make([]any, 0, 2+4*len(notes))
	args = append(args, orderID, traceID)
	for i, n := range notes {
		var at *time.Time
		if !n.At.IsZero() {
			at = &n.At
		}
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(row(i, len(args)))
		args = append(args, at, n.Step, n.Outcome, n.Detail)
	}
	return args
}

// traceparent is the W3C traceparent of ctx's span, empty outside any trace.
func traceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// traceID is the W3C trace id of ctx's span, empty outside any trace.
func traceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

const orderColumns = `o.id, o.user_id, o.status, o.reason, o.total_amount, o.currency, o.shipping_address, o.created_at, o.updated_at`

func scanOrder(row pgx.Row, extra ...any) (orders.Order, error) {
	var o orders.Order
	var addr []byte
	dest := append([]any{&o.ID, &o.UserID, &o.Status, &o.Reason, &o.Total.Amount, &o.Total.Currency, &addr, &o.CreatedAt, &o.UpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return o, err
	}
	if err := json.Unmarshal(addr, &o.ShippingAddress); err != nil {
		return o, fmt.Errorf("decode address: %w", err)
	}
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, nil
}

const itemsQuery = `SELECT product_id, quantity, unit_amount FROM order_items WHERE order_id = $1 ORDER BY position`

// readWithItems reads order id with query (orderColumns, then the columns
// scanned into extra) and its lines in one batch: one round trip, one
// snapshot. pgx.ErrNoRows when query finds no row.
func (s *Store) readWithItems(ctx context.Context, query string, id uuid.UUID, extra ...any) (orders.Order, error) {
	b := &pgx.Batch{}
	b.Queue(query, id)
	b.Queue(itemsQuery, id)
	br := s.db.SendBatch(ctx, b)
	o, err := scanOrder(br.QueryRow(), extra...)
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			o.Items, err = collectItems(rows, o.Total.Currency)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return o, err
}

// collectItems reads an order's lines (itemsQuery) and closes rows.
func collectItems(rows pgx.Rows, currency string) ([]orders.Line, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (orders.Line, error) {
		l := orders.Line{UnitPrice: orders.Money{Currency: currency}}
		err := r.Scan(&l.ProductID, &l.Quantity, &l.UnitPrice.Amount)
		return l, err
	})
}

var errNotFound = fault.E(fault.NotFound, fault.CodeNotFound, "no such order")

// GetVisible returns order id if who may see it (its owner or an admin). Any
// other caller gets the same fault.NotFound as for an order that does not
// exist, so order ids leak nothing.
func (s *Store) GetVisible(ctx context.Context, id uuid.UUID, who auth.Identity) (orders.Order, error) {
	o, err := s.Get(ctx, id)
	if err != nil {
		return orders.Order{}, err
	}
	if !o.VisibleTo(who.UserID, who.IsAdmin()) {
		return orders.Order{}, errNotFound
	}
	return o, nil
}

// Get returns an order with its lines; fault.NotFound when it does not exist.
// Visibility is the caller's business (orders.Order.VisibleTo). One round
// trip: the order and its lines are read in one batch (one snapshot).
func (s *Store) Get(ctx context.Context, id uuid.UUID) (orders.Order, error) {
	o, err := s.readWithItems(ctx, `SELECT `+orderColumns+` FROM orders o WHERE o.id = $1`, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return orders.Order{}, errNotFound
	}
	if err != nil {
		return orders.Order{}, unavailable(err)
	}
	return o, nil
}

// Statuses returns the status of each order of ids that exists; an unknown
// id is absent. One read-only query (the primary key), whatever the number of
// ids: the inventory sweep asks it for a batch of holds (order-statuses).
func (s *Store) Statuses(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]orders.Status, error) {
	out := make(map[uuid.UUID]orders.Status, len(ids))
	rows, err := s.db.Query(ctx, `SELECT id, status FROM orders WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, unavailable(err)
	}
	var id uuid.UUID
	var st string
	if _, err := pgx.ForEachRow(rows, []any{&id, &st}, func() error {
		out[id] = orders.Status(st)
		return nil
	}); err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// List returns up to limit orders of userID, newest first, starting after the
// order id before (uuid.Nil for the first page), and the cursor of the next
// page (uuid.Nil when there is none). UUIDv7 ids sort by creation time.
// Two round trips: the page's orders, read through orders_by_user from the
// cursor on (listFirst, listAfter), then their lines (loadPageItems).
func (s *Store) List(ctx context.Context, userID, before uuid.UUID, limit int) ([]orders.Order, uuid.UUID, error) {
	list, next, err := listPage(ctx, s.db, userID, before, limit)
	if err != nil {
		return nil, uuid.Nil, err
	}
	if err := s.loadPageItems(ctx, list); err != nil {
		return nil, uuid.Nil, unavailable(err)
	}
	return list, next, nil
}

// querier runs a query: the pool, or a transaction (the tests').
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// The statements of List: the first page, and a page after a cursor. Each
// states its bounds as an index condition of orders_by_user, so that any plan
// PostgreSQL keeps for it on a session — the generic plan it may cache after
// five runs included — reads the page from the cursor on. One statement for
// both, with ($2 IS NULL OR o.id < $2), got a generic plan that read every
// order of the customer and sorted them (TestAListPageReadsItsOwnRowsOnly).
const (
	listFirst = `SELECT ` + orderColumns + ` FROM orders o
		WHERE o.user_id = $1 ORDER BY o.id DESC LIMIT $2`
	listAfter = `SELECT ` + orderColumns + ` FROM orders o
		WHERE o.user_id = $1 AND o.id < $3 ORDER BY o.id DESC LIMIT $2`
)

// listPage is List without the lines, through q.
func listPage(ctx context.Context, q querier, userID, before uuid.UUID, limit int) ([]orders.Order, uuid.UUID, error) {
	query, args := listFirst, []any{userID, limit + 1}
	if before != uuid.Nil {
		query, args = listAfter, append(args, before)
	}
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, uuid.Nil, unavailable(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orders.Order, error) { return scanOrder(r) })
	if err != nil {
		return nil, uuid.Nil, unavailable(err)
	}
	next := uuid.Nil
	if len(list) > limit {
		list = list[:limit]
		next = list[limit-1].ID
	}
	return list, next, nil
}

// loadPageItems reads the lines of every order of list in one query (a page
// costs two round trips whatever its size, not one per order).
func (s *Store) loadPageItems(ctx context.Context, list []orders.Order) error {
	if len(list) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(list))
	at := make(map[uuid.UUID]int, len(list))
	for i, o := range list {
		ids[i], at[o.ID] = o.ID, i
	}
	rows, err := s.db.Query(ctx, `SELECT order_id, product_id, quantity, unit_amount FROM order_items
		WHERE order_id = ANY($1) ORDER BY order_id, position`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var l orders.Line
		if err := rows.Scan(&id, &l.ProductID, &l.Quantity, &l.UnitPrice.Amount); err != nil {
			return err
		}
		o := &list[at[id]]
		l.UnitPrice.Currency = o.Total.Currency
		o.Items = append(o.Items, l)
	}
	for i := range list {
		if list[i].Items == nil {
			list[i].Items = []orders.Line{} // as collectItems answers: a list, never null
		}
	}
	return rows.Err()
}

// Timeline returns up to limit of an order's steps in the order they
// happened, each with the trace id it was written in, after the first after
// entries (0 for the first page), and the position of the next page (after
// plus the page's entries; 0 when there is none). The position counts the
// order's own entries only (orders.TimelineCursor), never order_events.seq,
// which every order shares: a cursor made of it leaked the shop's volume. One
// query on order_events_by_order, which reads the order's entries up to the
// end of the page (the ones before it skipped by OFFSET, within the order's
// index range) and no other order's: a timeline is short (a stuck order's
// records its first recovery runs only, saga.RecordedRecoveries) and a page at
// most 500 entries.
func (s *Store) Timeline(ctx context.Context, orderID uuid.UUID, after int64, limit int) ([]orders.Step, int64, error) {
	rows, err := s.db.Query(ctx, `SELECT at, step, outcome, detail, trace_id FROM order_events
		WHERE order_id = $1 ORDER BY seq OFFSET $2 LIMIT $3`, orderID, after, limit+1)
	if err != nil {
		return nil, 0, unavailable(err)
	}
	steps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orders.Step, error) {
		var st orders.Step
		err := r.Scan(&st.At, &st.Step, &st.Outcome, &st.Detail, &st.TraceID)
		st.At = st.At.UTC()
		return st, err
	})
	if err != nil {
		return nil, 0, unavailable(err)
	}
	var next int64
	if len(steps) > limit {
		steps, next = steps[:limit], after+int64(limit)
	}
	return steps, next, nil
}

// LoadSaga returns an order with its saga state; fault.NotFound when the order
// does not exist.
func (s *Store) LoadSaga(ctx context.Context, orderID uuid.UUID) (Saga, error) {
	var sg Saga
	var token *string
	var age, inStatus float64
	o, err := s.readWithItems(ctx, `SELECT `+orderColumns+`, s.payment_token, s.from_cart, s.compensation, s.attempts, s.cart_owed,
			extract(epoch FROM now() - o.created_at)::float8, extract(epoch FROM now() - o.updated_at)::float8
		FROM orders o JOIN order_sagas s ON s.order_id = o.id WHERE o.id = $1`, orderID,
		&token, &sg.FromCart, &sg.Compensation, &sg.Attempts, &sg.CartOwed, &age, &inStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return sg, errNotFound
	}
	if err != nil {
		return sg, unavailable(err)
	}
	sg.Order = o
	sg.Age = time.Duration(age * float64(time.Second))
	sg.InStatus = time.Duration(inStatus * float64(time.Second))
	if token != nil {
		sg.PaymentToken = *token
	}
	return sg, nil
}

// Update is the one way an order changes. In one transaction it locks the
// order (SELECT … FOR UPDATE), lets decide change it — decide is the domain's
// decision (orders.Order.Confirm, Fail, Cancel) and sees the order with its
// lines — and writes what decide did:
//   - the order's status, reason and updated_at;
//   - the timeline entry of the change (Change.Step and Detail) and, for an
//     event, the outbox row and its own "recorded" timeline entry;
//   - the saga's state: the payment token is cleared, the lease released (or
//     kept for at least a minute more while a compensation or a cart removal
//     is owed, so that recovery does not race the driver settling it), the
//     compensation state set when the change names one, and cart_owed set
//     when the change owes a removal (Change.CartOwed), kept while the order
//     stays confirmed and cleared when it leaves confirmed;
//   - when the order leaves pending, the checkout its idempotency key (if
//     any) is settled with: the order as it is now and Change.Detail.
//
// notes, the timeline entries of what happened before the decision (see
// Note), are written first, whatever it decides. Two round trips: BEGIN with
// the locked order and its lines, then the writes with COMMIT (a statement
// that fails makes PostgreSQL skip the rest of its batch, COMMIT included,
// and the transaction is rolled back). A decision that changes nothing
// (Change.None) writes nothing else and returns the order as it is. decide's
// error is returned as is and nothing is written. fault.NotFound when the
// order does not exist; fault.Unavailable when the database fails.
func (s *Store) Update(ctx context.Context, orderID uuid.UUID, decide func(*orders.Order) (orders.Change, error), notes ...Note) (orders.Order, error) {
	// One batch begins the transaction and reads the order, locked, with its
	// lines; the next carries the writes and COMMIT (postgres.BatchTx: pgx's
	// Tx would spend a round trip of its own on COMMIT).
	read := &pgx.Batch{}
	read.Queue(`SELECT `+orderColumns+` FROM orders o WHERE o.id = $1 FOR UPDATE`, orderID)
	read.Queue(itemsQuery, orderID)
	tx, br := postgres.BeginBatch(ctx, s.db, read)
	defer tx.Rollback(ctx)
	o, err := readLocked(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = unavailable(cerr)
	}
	if err != nil {
		return orders.Order{}, err
	}
	was := o.Status
	change, err := decide(&o)
	if err != nil {
		return orders.Order{}, err
	}
	b := &pgx.Batch{}
	if change.None() {
		queueNotes(ctx, b, o.ID, notes...)
	} else if err := queueWrite(ctx, b, o, change, was == orders.Pending, notes); err != nil {
		return orders.Order{}, err
	}
	if err := tx.Commit(ctx, b); err != nil {
		return orders.Order{}, unavailable(err)
	}
	return o, nil
}

// UpdateKnown is Update for a caller that holds the order as it is stored
// (known: the order Create wrote, or LoadSaga read), in one round trip where
// Update takes two. decide decides on a copy of known, and one batch sends
// BEGIN, the order's new status with an assertion, the writes of Update and
// COMMIT (postgres.ExecTx). The assertion is the order's UPDATE itself: it
// changes the row only while its status and updated_at are still known's,
// under the row lock it takes (the lock Update's SELECT … FOR UPDATE takes),
// and fails the statement otherwise, so PostgreSQL skips the rest of the
// batch, COMMIT included, and nothing is written. An order whose status and
// updated_at are known's is known: every change of an order writes both
// (queueWrite), and its lines, total and address never change. When the
// assertion fails — the order changed since known was read — UpdateKnown is
// Update: the order is read locked and decide decides again on what is
// stored. So is it for a known order that is not pending (only a pending
// order's checkout is on the hot path), a decision on known that fails or
// changes nothing. The answer and the writes are Update's.
func (s *Store) UpdateKnown(ctx context.Context, known orders.Order, decide func(*orders.Order) (orders.Change, error), notes ...Note) (orders.Order, error) {
	if known.Status != orders.Pending {
		return s.Update(ctx, known.ID, decide, notes...)
	}
	o := known
	o.Items = slices.Clone(known.Items)
	change, err := decide(&o)
	if err != nil || change.None() {
		return s.Update(ctx, known.ID, decide, notes...)
	}
	b := &pgx.Batch{}
	// 1 / 0 when the order is not as known: "division by zero" (22012)
	// aborts the transaction; no other statement of the batch divides.
	b.Queue(`WITH u AS (UPDATE orders SET status = $2, reason = $3, updated_at = $4
			WHERE id = $1 AND status = $5 AND updated_at = $6 RETURNING 1)
		SELECT 1 / count(*)::int FROM u`, o.ID, o.Status, o.Reason, o.UpdatedAt, known.Status, known.UpdatedAt)
	if err := queueChange(ctx, b, o, change, true, notes); err != nil {
		return orders.Order{}, err
	}
	err = postgres.ExecTx(ctx, s.db, b)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "22012":
		return s.Update(ctx, known.ID, decide, notes...)
	case err != nil:
		return orders.Order{}, unavailable(err)
	}
	return o, nil
}

// readLocked reads the results of Update's first batch: the order (locked)
// and its lines.
func readLocked(br pgx.BatchResults) (orders.Order, error) {
	o, err := scanOrder(br.QueryRow())
	if errors.Is(err, pgx.ErrNoRows) {
		return o, errNotFound
	}
	if err != nil {
		return o, unavailable(err)
	}
	rows, err := br.Query()
	if err != nil {
		return o, unavailable(err)
	}
	if o.Items, err = collectItems(rows, o.Total.Currency); err != nil {
		return o, unavailable(err)
	}
	return o, nil
}

// queueWrite adds the writes of a decided change of o (see Update) to b,
// with notes, the timeline entries of what happened before the decision;
// settle also settles the order's idempotency key.
func queueWrite(ctx context.Context, b *pgx.Batch, o orders.Order, c orders.Change, settle bool, notes []Note) error {
	b.Queue(`UPDATE orders SET status = $2, reason = $3, updated_at = $4 WHERE id = $1`,
		o.ID, o.Status, o.Reason, o.UpdatedAt)
	return queueChange(ctx, b, o, c, settle, notes)
}

// queueChange adds the writes of a decided change of o but the order's own
// row (see queueWrite) to b. The timeline entries — notes, the change's, and
// the event's "recorded" — are one INSERT (queueNotes), in that order.
func queueChange(ctx context.Context, b *pgx.Batch, o orders.Order, c orders.Change, settle bool, notes []Note) error {
	entries := append(slices.Clip(notes), Note{Step: c.Step, Outcome: orders.StepOK, Detail: c.Detail})
	// A cart removal owed stays owed while the order stays confirmed; an
	// order that leaves confirmed (cancel-order) owes none: its lines stay.
	b.Queue(`UPDATE order_sagas SET payment_token = NULL, updated_at = now(),
		cart_owed = $4 OR (cart_owed AND $5::text = $6::text),
		lease_until = CASE WHEN $2::text = $3::text OR $4 THEN greatest(lease_until, now() + interval '1 minute') ELSE now() END,
		compensation = CASE WHEN $2::text = '' THEN compensation ELSE $2::text END WHERE order_id = $1`,
		o.ID, c.Compensation, orders.CompensationOwed, c.CartOwed, o.Status, orders.Confirmed)
	if c.Event != "" {
		ev, err := events.New(ctx, orders.Source, c.Event, o.ID.String(), o.EventData())
		if err != nil {
			return fault.Internalf("order event: %w", err)
		}
		outbox.Queue(b, ev)
		entries = append(entries, Note{Step: c.Event, Outcome: orders.StepRecorded, Detail: "event written to the outbox"})
	}
	queueNotes(ctx, b, o.ID, entries...)
	if settle {
		b.Queue(`UPDATE idempotency_keys
			SET settled_status = $2, settled_reason = $3, settled_detail = $4, settled_at = $5
			WHERE order_id = $1 AND settled_status IS NULL`, o.ID, o.Status, o.Reason, c.Detail, o.UpdatedAt)
	}
	return nil
}

// SettleCompensation marks an order's owed release/refund as done.
func (s *Store) SettleCompensation(ctx context.Context, orderID uuid.UUID) error {
	if _, err := s.db.Exec(ctx, `UPDATE order_sagas SET compensation = $2, updated_at = now()
		WHERE order_id = $1 AND compensation = $3`, orderID, orders.CompensationDone, orders.CompensationOwed); err != nil {
		return unavailable(err)
	}
	return nil
}

// Claim is an order ClaimStale leased to the caller.
type Claim struct {
	// OrderID is the order.
	OrderID uuid.UUID
	// Checkout is the span context the order was placed in (Create's: the
	// checkout's), remote, so that the span of the order's recovery can link
	// to the checkout's trace; invalid when unknown (an order placed outside
	// any trace or before orders migration 0004).
	Checkout trace.SpanContext
	// Status is the order's status when it was claimed: confirmed for an
	// order claimed only for its owed cart removal (Saga.CartOwed).
	Status orders.Status
	// Attempts is the saga's count of claims, this one included: the claim's
	// fencing token. RenewClaim extends the claim only while the count is
	// still this, so a run whose claim ran out and was taken by another run
	// cannot extend the other's.
	Attempts int
}

// ClaimStale leases up to limit orders whose saga is unfinished — pending
// orders older than olderThan, orders still owing a compensation, and
// confirmed cart orders whose lines are still owed out of the cart — and
// whose current lease has run out, to the caller for lease, the least
// recently tried first (by the lease's end: a claim sets it, the checkout's
// own write first), so that orders recovery cannot finish take turns and one
// whose drive keeps failing slowly does not hold the others back; a cart
// removal only after them (money before carts: a Redis that hangs makes each
// removal wait its timeout, and must not keep a run from the orders behind).
// Rows are taken with FOR UPDATE SKIP LOCKED and leased in the same
// transaction, so concurrent recoverers never drive the same order at once
// while each renews its claims (RenewClaim). The orders of skip are left
// alone: a run passes those it has driven already, so that it never drives
// an order twice (a claim it no longer renews runs out within lease).
func (s *Store) ClaimStale(ctx context.Context, olderThan, lease time.Duration, limit int, skip []uuid.UUID) ([]Claim, error) {
	var claims []Claim
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) (err error) {
		claims, err = claimStale(ctx, tx, olderThan, lease, limit, skip)
		return err
	})
	return claims, err
}

// RenewClaim extends the claim a recovery run holds on the saga of order
// orderID (ClaimStale's, whose Claim.Attempts is attempts) to lease from now,
// never shortening it: the run's heartbeat while it drives the order, so that
// the claim can be short and the order of a run that dies is claimable again
// within lease. It reports whether the claim is still the run's: false once
// another claim was made since (the count moved on: the run's claim had run
// out and another run took the order), and nothing is changed — fencing, so
// a run that lost its claim never extends the claim of the run that took it.
// fault.Unavailable when the database fails.
func (s *Store) RenewClaim(ctx context.Context, orderID uuid.UUID, attempts int, lease time.Duration) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE order_sagas SET lease_until = greatest(lease_until, now() + $3::float8 * interval '1 second')
		WHERE order_id = $1 AND attempts = $2`, orderID, attempts, lease.Seconds())
	if err != nil {
		return false, unavailable(err)
	}
	return tag.RowsAffected() == 1, nil
}

// claimStale is ClaimStale in tx. It reads the open sagas only, through
// order_sagas_open: the candidates are the sagas whose lease ran out among
// those the index holds (an order is pending exactly while its saga keeps
// the payment token: Create writes one, and every change of an order moves it
// out of pending and clears it), so the claim reads what is open, not every
// order ever placed; the sagas that owe a cart removal come through
// order_sagas_cart_owed (migration 0006) the same way. The indexes' conditions
// are written out, as literals, so that a generic plan is proven to use them too; the candidates go in as an
// array, so the join reads them by key whatever the statistics say (this
// machine's PostgreSQL runs with autovacuum off).
func claimStale(ctx context.Context, tx pgx.Tx, olderThan, lease time.Duration, limit int, skip []uuid.UUID) ([]Claim, error) {
	if skip == nil {
		skip = []uuid.UUID{} // NULL would match no order at all (<> ALL (NULL) is NULL)
	}
	// The row is locked (FOR UPDATE) until the claim below commits: its
	// count of claims, plus this one, is the claim's fencing token.
	rows, err := tx.Query(ctx, `SELECT s.order_id, s.traceparent, o.status, s.attempts + 1 FROM order_sagas s JOIN orders o ON o.id = s.order_id
		WHERE s.order_id = ANY (ARRAY(SELECT order_id FROM order_sagas
				WHERE lease_until < now() AND (payment_token IS NOT NULL OR compensation = 'pending')
			UNION ALL SELECT order_id FROM order_sagas WHERE lease_until < now() AND cart_owed))
		  AND s.lease_until < now() AND s.order_id <> ALL ($5::uuid[])
		  AND ((o.status = $3 AND o.created_at < now() - $1::float8 * interval '1 second') OR s.compensation = $4 OR s.cart_owed)
		ORDER BY (o.status = $3 OR s.compensation = $4) DESC, s.lease_until, o.created_at LIMIT $2 FOR UPDATE OF s SKIP LOCKED`,
		olderThan.Seconds(), limit, orders.Pending, orders.CompensationOwed, skip)
	if err != nil {
		return nil, unavailable(err)
	}
	var claims []Claim
	var ids []uuid.UUID
	var id uuid.UUID
	var tp string
	var st orders.Status
	var attempts int
	_, err = pgx.ForEachRow(rows, []any{&id, &tp, &st, &attempts}, func() error {
		claims = append(claims, Claim{OrderID: id, Checkout: spanContext(tp), Status: st, Attempts: attempts})
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	_, err = tx.Exec(ctx, `UPDATE order_sagas SET lease_until = now() + $2::float8 * interval '1 second', attempts = attempts + 1, updated_at = now()
		WHERE order_id = ANY($1)`, ids, lease.Seconds())
	if err != nil {
		return nil, unavailable(err)
	}
	return claims, nil
}

// spanContext is the remote span context of a stored traceparent; invalid
// for "" (or anything propagation.TraceContext refuses).
func spanContext(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// PurgeKeys deletes idempotency keys past their expiry, oldest first, and
// reports how many went. It deletes them in batches of postgres.DeleteBatch,
// each its own statement and commit (postgres.DeleteInBatches), picked
// through idempotency_keys_expiry: after recover-orders stopped for a while
// the backlog is 24 h of keys a day (4.3 million at 50 orders/s), and one
// DELETE of them held their locks until it ended and lost everything when a
// run's deadline cut it. Now a batch's locks go with it, and what a run
// deleted before its deadline stays deleted: the next run goes on. Each batch
// checks the expiry again, so a key taken anew meanwhile (Create) stays. On an
// error, the count is of the rows deleted before it.
func (s *Store) PurgeKeys(ctx context.Context) (int64, error) {
	n, err := postgres.DeleteInBatches(ctx, s.db, `DELETE FROM idempotency_keys
		WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys WHERE expires_at < now() ORDER BY expires_at LIMIT $1))
		  AND expires_at < now()`)
	if err != nil {
		return n, unavailable(err)
	}
	return n, nil
}
