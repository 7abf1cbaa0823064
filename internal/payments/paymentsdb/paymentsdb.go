// Package paymentsdb stores payments in the payments service's own PostgreSQL
// database: one row per order, inserted in its final status once the
// processor answered (Record), with a lease taken to refund it that tells a
// live attempt from a crashed one. (Rows inserted pending before the
// processor was called are the previous version's; Claim and Finish settle
// them.) It also
// holds the built-in processor simulator's ledger (SimLedger), a separate
// table that stands for the processor's own records.
package paymentsdb

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
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the payments database's versioned migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrationFiles, "migrations") // cannot fail: the directory is embedded
	return sub
}

// Store implements payments.Store. It is safe for concurrent use.
//
// The writes that record what the processor answered — Record, Finish,
// Unclaim and Discard — each run on postgres.Detached(ctx): the caller's
// cancellation does not cut them (Service calls them detached already), and
// they end, with fault.Unavailable, at Detached's timeout (10 s) whatever the
// caller's context, so a connection that stopped answering (a half-open TCP
// connection) gives its pool slot back instead of holding it while the kernel
// retransmits. The reads and Claim run on the caller's context.
type Store struct {
	db     *pgxpool.Pool
	detach func(context.Context) (context.Context, context.CancelFunc) // postgres.Detached; tests shorten it
}

// New returns a store over pool, whose database has Migrations applied.
func New(pool *pgxpool.Pool) *Store { return &Store{db: pool, detach: postgres.Detached} }

var _ payments.Store = (*Store)(nil)

const columns = `id, order_id, user_id, status, amount, currency, provider_ref, decline_code, created_at, updated_at`

// Record inserts p as the processor answered it — captured or declined, with
// res's reference and decline code — unless the order already has a payment,
// and returns the stored payment either way. One statement inserts and
// answers the stored row (one round trip, one commit); only when a concurrent
// twin inserted the order after the statement's snapshot was taken (it waited
// for that insert to commit, then saw neither row) is the row read again.
// It runs on postgres.Detached(ctx), the read again included.
// Errors: fault.Unavailable on database failure or past Detached's timeout.
func (s *Store) Record(ctx context.Context, p payments.Payment, res payments.Result) (payments.Payment, error) {
	if res.Outcome != payments.OutcomeCaptured && res.Outcome != payments.OutcomeDeclined {
		return payments.Payment{}, fault.Internalf("record payment: outcome %q is not a charge's", res.Outcome)
	}
	ctx, cancel := s.detach(ctx)
	defer cancel()
	stored, err := scan(s.db.QueryRow(ctx, `WITH ins AS (
			INSERT INTO payments (id, order_id, user_id, status, amount, currency, provider_ref, decline_code, attempts)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) ON CONFLICT (order_id) DO NOTHING
			RETURNING `+columns+`)
		SELECT `+columns+` FROM ins
		UNION ALL
		SELECT `+columns+` FROM payments WHERE order_id = $2 AND NOT EXISTS (SELECT 1 FROM ins)`,
		p.ID, p.OrderID, p.UserID, string(res.Outcome), p.Amount.Amount, p.Amount.Currency, res.Reference, res.DeclineCode))
	if errors.Is(err, pgx.ErrNoRows) {
		return s.ByOrder(ctx, p.OrderID)
	}
	if err != nil {
		return stored, unavailable(err)
	}
	return stored, nil
}

// Claim takes the order's payment in status from when no unexpired claim is
// held on it, counting an attempt. ok is false when the payment is in another
// status or claimed by a live attempt.
func (s *Store) Claim(ctx context.Context, orderID uuid.UUID, from payments.Status, claim uuid.UUID, lease time.Duration) (payments.Payment, bool, error) {
	p, err := scan(s.db.QueryRow(ctx, `UPDATE payments
		SET claim_id = $3, claim_until = now() + make_interval(secs => $4), attempts = attempts + 1, updated_at = now()
		WHERE order_id = $1 AND status = $2 AND (claim_until IS NULL OR claim_until <= now())
		RETURNING `+columns, orderID, string(from), claim, lease.Seconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, unavailable(err)
	}
	return p, true, nil
}

// Finish records res on the payment held by claim and drops the claim: a
// capture or decline of a pending payment, a refund of a captured one. When
// claim no longer holds the payment, the stored payment is returned unchanged.
// The database refuses any backward status move. It runs on
// postgres.Detached(ctx); errors: fault.Unavailable on database failure or
// past Detached's timeout.
func (s *Store) Finish(ctx context.Context, orderID, claim uuid.UUID, res payments.Result) (payments.Payment, error) {
	var q string
	switch res.Outcome {
	case payments.OutcomeCaptured, payments.OutcomeDeclined:
		q = `UPDATE payments SET status = $3, provider_ref = $4, decline_code = $5,
			claim_id = NULL, claim_until = NULL, updated_at = now()
			WHERE order_id = $1 AND claim_id = $2 AND status = 'pending' RETURNING ` + columns
	case payments.OutcomeRefunded:
		q = `UPDATE payments SET status = $3, refund_ref = $4,
			claim_id = NULL, claim_until = NULL, updated_at = now()
			WHERE order_id = $1 AND claim_id = $2 AND status = 'captured' AND $5::text IS NOT NULL RETURNING ` + columns
	default:
		return payments.Payment{}, fault.Internalf("finish payment: unknown outcome %q", res.Outcome)
	}
	ctx, cancel := s.detach(ctx)
	defer cancel()
	p, err := scan(s.db.QueryRow(ctx, q, orderID, claim, string(res.Outcome), res.Reference, res.DeclineCode))
	if errors.Is(err, pgx.ErrNoRows) {
		return s.ByOrder(ctx, orderID)
	}
	if err != nil {
		return p, unavailable(err)
	}
	return p, nil
}

// Unclaim drops claim, leaving the status as it is. It runs on
// postgres.Detached(ctx); errors: fault.Unavailable on database failure or
// past Detached's timeout.
func (s *Store) Unclaim(ctx context.Context, orderID, claim uuid.UUID) error {
	ctx, cancel := s.detach(ctx)
	defer cancel()
	if _, err := s.db.Exec(ctx, `UPDATE payments SET claim_id = NULL, claim_until = NULL
		WHERE order_id = $1 AND claim_id = $2`, orderID, claim); err != nil {
		return unavailable(err)
	}
	return nil
}

// Discard deletes the order's payment if it is pending and held by claim.
// It runs on postgres.Detached(ctx); errors: fault.Unavailable on database
// failure or past Detached's timeout.
func (s *Store) Discard(ctx context.Context, orderID, claim uuid.UUID) error {
	ctx, cancel := s.detach(ctx)
	defer cancel()
	if _, err := s.db.Exec(ctx, `DELETE FROM payments WHERE order_id = $1 AND claim_id = $2 AND status = 'pending'`,
		orderID, claim); err != nil {
		return unavailable(err)
	}
	return nil
}

// ByOrder returns the order's payment; fault.NotFound "not_found" when the
// order has none, fault.Unavailable on database failure.
func (s *Store) ByOrder(ctx context.Context, orderID uuid.UUID) (payments.Payment, error) {
	p, err := scan(s.db.QueryRow(ctx, `SELECT `+columns+` FROM payments WHERE order_id = $1`, orderID))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fault.E(fault.NotFound, fault.CodeNotFound, "no payment for this order")
	}
	if err != nil {
		return p, unavailable(err)
	}
	return p, nil
}

func scan(row pgx.Row) (payments.Payment, error) {
	var p payments.Payment
	var status string
	err := row.Scan(&p.ID, &p.OrderID, &p.UserID, &status, &p.Amount.Amount, &p.Amount.Currency,
		&p.ProviderRef, &p.DeclineCode, &p.CreatedAt, &p.UpdatedAt)
	p.Status = payments.Status(status)
	return p, err
}

func unavailable(err error) error {
	return fault.Wrap(fmt.Errorf("payments database: %w", err), fault.Unavailable, fault.CodeUnavailable,
		"payments temporarily unavailable")
}

// refundIndex is migration 0005's one-refund-per-charge index.
const refundIndex = "processor_sim_entries_refund_of_charge"

// ExplainMigration returns err, a failure of the payments migrations, with
// what to do added when migration 0005's one-refund-per-charge index could
// not be built because a charge was refunded twice since 0004 checked the
// ledger: during a rolling upgrade, the previous version, still serving,
// pays a second refund of a charge already refunded under another key.
// PostgreSQL says only "could not create unique index"; this names the
// charge and the way out 0004 gives (docs/checkout.md, "A charge refunded by
// hand"). Any other error, and nil, is returned as it is.
func ExplainMigration(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" ||
		(pgErr.ConstraintName != refundIndex && !strings.Contains(pgErr.Message, refundIndex)) {
		return err
	}
	return fmt.Errorf("payments migration 0005: the payment simulator's ledger (processor_sim_entries) holds a charge "+
		"refunded more than once (%s), refunded again since migration 0004 checked it (the previous version, still "+
		"serving during the upgrade, paid a second refund), so the one-refund-per-charge index cannot be built: stop "+
		"the previous version's payments functions, keep each charge's first refund, delete the others "+
		"(docs/checkout.md, \"A charge refunded by hand\") and start again: %w", pgErr.Detail, err)
}
