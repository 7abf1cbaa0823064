// Package outbox writes domain events into the producing service's database in
// the same transaction as the state change they describe. The outbox relay
// (connectors/outbox-relay) publishes them to RabbitMQ afterwards, so an
// event exists if and only if its change committed.
package outbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/events"
)

// Schema is the outbox table every service database has. Service migrations
// include it verbatim (a test checks that they do). transaction_id lets the
// relay read only rows whose transaction is older than every running one, so
// rows committed out of order are never skipped.
const Schema = `CREATE TABLE IF NOT EXISTS outbox (
	seq            bigserial PRIMARY KEY,
	id             uuid NOT NULL UNIQUE,
	type           text NOT NULL,
	source         text NOT NULL,
	subject        text NOT NULL DEFAULT '',
	envelope       jsonb NOT NULL,
	transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
	created_at     timestamptz NOT NULL DEFAULT now(),
	published_at   timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (transaction_id, seq) WHERE published_at IS NULL;
`

// Channel is the LISTEN/NOTIFY channel that wakes the relay after a commit.
const Channel = "outbox"

// Append writes ev to the outbox on tx and notifies the relay when tx commits.
func Append(ctx context.Context, tx pgx.Tx, ev events.Envelope) error {
	b := &pgx.Batch{}
	Queue(b, ev)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("outbox append %s: %w", ev.Type, err)
	}
	return nil
}

// Queue adds Append's statement for ev to b, for a caller that sends the
// rest of its transaction's writes in the same batch (one round trip). The
// batch must run inside the transaction of the change ev describes. The
// INSERT and the NOTIFY are one statement (the NOTIFY reads the INSERT's
// row, so it runs once the row is written; both take effect at the
// transaction's commit, as two statements did).
func Queue(b *pgx.Batch, ev events.Envelope) {
	b.Queue(`WITH ins AS (INSERT INTO outbox (id, type, source, subject, envelope) VALUES ($1, $2, $3, $4, $5) RETURNING 1)
		SELECT pg_notify($6, '') FROM ins`,
		ev.ID, ev.Type, ev.Source, ev.Subject, ev, Channel)
}

// QueueAll adds to b the statement that appends every event of evs, in
// order, with one INSERT and one NOTIFY for them all (one statement, as
// Queue's): the relay reads every
// pending row when it wakes, so one notification per transaction is enough
// (PostgreSQL folds identical notifications of a transaction into one
// anyway; QueueAll saves the statements). Nothing is queued when evs is
// empty. Like Queue, the batch must run inside the transaction of the change
// the events describe.
//
// Two shapes, on purpose: one event (the common case: most transactions
// publish one) is Queue's single-row INSERT, whose plan is a plain insert of
// five parameters and whose parameters are encoded as scalars; several go
// through one INSERT … SELECT FROM unnest of five arrays WITH ORDINALITY
// (ordered, one round trip whatever their number), which costs array
// encoding and a function scan that one row does not need.
// TestQueueAllAppendsInOrderWithOneNotification covers both.
func QueueAll(b *pgx.Batch, evs ...events.Envelope) {
	switch len(evs) {
	case 0:
		return
	case 1:
		Queue(b, evs[0])
		return
	}
	ids, types, sources, subjects := make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs))
	for i, ev := range evs {
		ids[i], types[i], sources[i], subjects[i] = ev.ID, ev.Type, ev.Source, ev.Subject
	}
	b.Queue(`WITH ins AS (INSERT INTO outbox (id, type, source, subject, envelope)
			SELECT id, type, source, subject, envelope
			FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY
				AS e(id, type, source, subject, envelope, n)
			ORDER BY n
			RETURNING 1)
		SELECT pg_notify($6, '') WHERE EXISTS (SELECT FROM ins)`, ids, types, sources, subjects, evs, Channel)
}

// Publish builds the envelope for data and appends it on tx.
func Publish(ctx context.Context, tx pgx.Tx, source, typ, subject string, data any) error {
	ev, err := events.New(ctx, source, typ, subject, data)
	if err != nil {
		return err
	}
	return Append(ctx, tx, ev)
}
