package paymentsdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/simulator"
)

// SimLedger keeps the built-in processor simulator's records in the
// processor_sim_entries table, apart from our own payments table: it stands
// for the processor's side, whose memory of an idempotency key outlives any
// crash of ours. It implements simulator.Ledger.
type SimLedger struct {
	db *pgxpool.Pool
}

// NewSimLedger returns the simulator's ledger over pool.
func NewSimLedger(pool *pgxpool.Pool) *SimLedger { return &SimLedger{db: pool} }

var _ simulator.Ledger = (*SimLedger)(nil)

const simColumns = `idempotency_key, kind, outcome, reference, decline_code, charge_ref, amount, currency`

// Record stores e unless its key is recorded; the stored entry is returned
// either way, so concurrent twins agree on one outcome. One statement inserts
// and answers the stored entry; only when a concurrent twin inserted the key
// after the statement's snapshot was taken (it waited for that insert to
// commit, then saw neither row) is the entry read again.
func (l *SimLedger) Record(ctx context.Context, e simulator.Entry) (simulator.Entry, error) {
	stored, found, err := l.find(ctx, `WITH ins AS (
			INSERT INTO processor_sim_entries (`+simColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING
			RETURNING `+simColumns+`)
		SELECT `+simColumns+` FROM ins
		UNION ALL
		SELECT `+simColumns+` FROM processor_sim_entries WHERE idempotency_key = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,
		e.Key, e.Kind, string(e.Outcome), e.Reference, e.DeclineCode, e.ChargeRef, e.Amount.Amount, e.Amount.Currency)
	if err == nil && !found {
		stored, found, err = l.Find(ctx, e.Key)
	}
	if err == nil && !found {
		err = fmt.Errorf("simulator ledger: entry %s vanished", e.Key)
	}
	return stored, err
}

// Find returns the entry recorded under key.
func (l *SimLedger) Find(ctx context.Context, key string) (simulator.Entry, bool, error) {
	return l.find(ctx, `SELECT `+simColumns+` FROM processor_sim_entries WHERE idempotency_key = $1`, key)
}

// FindReference returns the entry whose reference is ref.
func (l *SimLedger) FindReference(ctx context.Context, ref string) (simulator.Entry, bool, error) {
	return l.find(ctx, `SELECT `+simColumns+` FROM processor_sim_entries WHERE reference = $1`, ref)
}

// Count reports how many entries of kind ("charge" or "refund") the simulator
// holds: how many times money actually moved.
func (l *SimLedger) Count(ctx context.Context, kind string) (int, error) {
	var n int
	err := l.db.QueryRow(ctx, `SELECT count(*) FROM processor_sim_entries WHERE kind = $1`, kind).Scan(&n)
	return n, err
}

func (l *SimLedger) find(ctx context.Context, q string, args ...any) (simulator.Entry, bool, error) {
	var e simulator.Entry
	var outcome string
	err := l.db.QueryRow(ctx, q, args...).Scan(&e.Key, &e.Kind, &outcome, &e.Reference, &e.DeclineCode, &e.ChargeRef,
		&e.Amount.Amount, &e.Amount.Currency)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("simulator ledger: %w", err)
	}
	e.Outcome = payments.Outcome(outcome)
	return e, true, nil
}
