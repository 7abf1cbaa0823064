package paymentsdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres"
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

const simColumns = `idempotency_key, kind, outcome, reference, decline_code, charge_ref, amount, currency, customer`

// refundOf is the reference of the refund of the charge entry e (a table
// alias), empty when e is not a charge or has no refund: every read of an
// entry returns it after simColumns (simulator.Entry.RefundRef). The index of
// migration 0005 finds it.
func refundOf(e string) string {
	return `coalesce((SELECT r.reference FROM processor_sim_entries r WHERE ` + e + `.kind = 'charge'
		AND r.kind = 'refund' AND r.charge_ref = ` + e + `.reference ORDER BY r.created_at LIMIT 1), '')`
}

// Record stores e unless its key is recorded, or, for a refund, unless its
// charge (e.ChargeRef) has a refund already; the stored entry is returned
// either way — the key's, else the charge's refund — so concurrent twins
// agree on one outcome, and two refunds of a charge under different keys on
// one refund (the partial unique index of migration 0005 keeps a charge to
// one refund entry). One statement inserts and answers the stored entry;
// only when a concurrent twin inserted the key or the charge's refund after
// the statement's snapshot was taken (it waited for that insert to commit,
// then saw neither row) is the entry read again.
//
// The insert names what it may find taken (ON CONFLICT with a target): a
// charge its key, a refund its charge's refund; a refund twin whose key a
// concurrent twin inserted first fails on the key instead, and is answered
// by reading the entry again. Any other collision, on the random reference
// above all, is an error naming its constraint, not an entry "vanished".
//
// The insert commits asynchronously (synchronous_commit off), in one round
// trip with its BEGIN and COMMIT: the simulator stands for a remote
// processor, whose own durability is not the shop's work to pay for (R3, the
// benchmark's reference, has no processor at all). It loses nothing the shop
// relies on: the ledger lives in the payments database, and whatever the
// shop does with an answer — the payment recorded captured or declined
// (payments.Store.Record), refunded (payments.Store.Finish) — is a
// synchronous commit in the same PostgreSQL after this one, and PostgreSQL
// flushes its WAL in order, so the ledger's entry is durable before the
// shop's record of it. Only a PostgreSQL crash in between can lose the
// entry, and then the shop has recorded nothing either: the next attempt
// charges under the key again, finds no entry and charges once; a refund
// asks with Void, whose answer is durable (docs/checkout.md, Payments).
func (l *SimLedger) Record(ctx context.Context, e simulator.Entry) (simulator.Entry, error) {
	var stored simulator.Entry
	found := false
	target := "(idempotency_key)"
	if e.Kind == "refund" {
		target = "(charge_ref) WHERE kind = 'refund'"
	}
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue("set local synchronous_commit = off")
	b.Queue(`WITH ins AS (
			INSERT INTO processor_sim_entries (`+simColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT `+target+` DO NOTHING
			RETURNING `+simColumns+`)
		SELECT `+simColumns+`, `+refundOf("found")+` FROM (
			SELECT 0 AS rank, `+simColumns+` FROM ins
			UNION ALL
			`+storedOrFirstRefund("$1", "$2", "$6")+`) AS found
		ORDER BY rank LIMIT 1`,
		e.Key, e.Kind, string(e.Outcome), e.Reference, e.DeclineCode, e.ChargeRef, e.Amount.Amount, e.Amount.Currency,
		e.Customer).
		QueryRow(func(row pgx.Row) error {
			var err error
			stored, found, err = scanEntry(row)
			return err
		})
	b.Queue("commit")
	err := l.db.SendBatch(ctx, b).Close()
	if e.Kind == "refund" && postgres.IsUniqueViolation(err, "processor_sim_entries_pkey") {
		err = nil // a twin of the same key inserted it first: read it
	}
	if err != nil {
		return stored, fmt.Errorf("simulator ledger: %w", err)
	}
	if !found {
		stored, found, err = l.find(ctx, `SELECT `+simColumns+`, `+refundOf("found")+`
			FROM (`+storedOrFirstRefund("$1", "$2", "$3")+`) AS found ORDER BY rank LIMIT 1`,
			e.Key, e.Kind, e.ChargeRef)
	}
	if err == nil && !found {
		err = fmt.Errorf("simulator ledger: entry %s vanished", e.Key)
	}
	return stored, err
}

// storedOrFirstRefund selects, ranked, the entry stored under the key
// (placeholder key), then, when kind is "refund", the refund of the charge
// (placeholder charge): what Record answers when its insert did nothing.
func storedOrFirstRefund(key, kind, charge string) string {
	return `SELECT 1 AS rank, ` + simColumns + ` FROM processor_sim_entries WHERE idempotency_key = ` + key + `
			UNION ALL
			SELECT 2, ` + simColumns + ` FROM processor_sim_entries
			WHERE ` + kind + `::text = 'refund' AND kind = 'refund' AND charge_ref = ` + charge
}

// Void stores e unless its key is recorded, like Record, and answers the
// stored entry, but durably, whichever entry it answers: it commits
// synchronously, and an existing entry is touched by a no-op update (ON
// CONFLICT DO UPDATE) so that this commit has a WAL record to flush, past the
// entry's own asynchronous commit. A refund decides from Void's answer that
// nothing was charged (a decline or the void itself) or that a charge must be
// recorded and refunded; neither may be lost to a crash. The update also
// waits for a concurrent twin's insert of the key, so one statement always
// answers the entry.
func (l *SimLedger) Void(ctx context.Context, e simulator.Entry) (simulator.Entry, error) {
	stored, found, err := scanEntry(l.db.QueryRow(ctx, `WITH v AS (
			INSERT INTO processor_sim_entries (`+simColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = processor_sim_entries.idempotency_key
			RETURNING `+simColumns+`)
		SELECT `+simColumns+`, `+refundOf("v")+` FROM v`,
		e.Key, e.Kind, string(e.Outcome), e.Reference, e.DeclineCode, e.ChargeRef, e.Amount.Amount, e.Amount.Currency,
		e.Customer))
	if err == nil && !found {
		err = errors.New("no entry returned")
	}
	if err != nil {
		return stored, fmt.Errorf("simulator ledger: void %s: %w", e.Key, err)
	}
	return stored, nil
}

// Find returns the entry recorded under key.
func (l *SimLedger) Find(ctx context.Context, key string) (simulator.Entry, bool, error) {
	return l.find(ctx, `SELECT `+simColumns+`, `+refundOf("e")+` FROM processor_sim_entries e WHERE idempotency_key = $1`, key)
}

// FindReference returns the entry whose reference is ref.
func (l *SimLedger) FindReference(ctx context.Context, ref string) (simulator.Entry, bool, error) {
	return l.find(ctx, `SELECT `+simColumns+`, `+refundOf("e")+` FROM processor_sim_entries e WHERE reference = $1`, ref)
}

// Count reports how many entries of kind ("charge" or "refund") the simulator
// holds: how many times money actually moved.
func (l *SimLedger) Count(ctx context.Context, kind string) (int, error) {
	var n int
	err := l.db.QueryRow(ctx, `SELECT count(*) FROM processor_sim_entries WHERE kind = $1`, kind).Scan(&n)
	return n, err
}

func (l *SimLedger) find(ctx context.Context, q string, args ...any) (simulator.Entry, bool, error) {
	e, found, err := scanEntry(l.db.QueryRow(ctx, q, args...))
	if err != nil {
		return e, false, fmt.Errorf("simulator ledger: %w", err)
	}
	return e, found, nil
}

// scanEntry reads one entry, simColumns then refundOf; found is false when
// there is no row.
func scanEntry(row pgx.Row) (simulator.Entry, bool, error) {
	var e simulator.Entry
	var outcome string
	err := row.Scan(&e.Key, &e.Kind, &outcome, &e.Reference, &e.DeclineCode, &e.ChargeRef, &e.Amount.Amount, &e.Amount.Currency,
		&e.Customer, &e.RefundRef)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, err
	}
	e.Outcome = payments.Outcome(outcome)
	return e, true, nil
}
