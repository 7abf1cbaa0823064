// Package inbox makes event consumers idempotent: a consumer claims an event id
// in the same transaction as the event's effect, so a redelivered event (the
// broker delivers at least once) finds its id taken and changes nothing.
package inbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres"
)

// DefaultRetention is how long processed-event records are kept when
// INBOX_RETENTION is unset (RetentionFrom): the outbox relay prunes them past
// it (Prune), and consumers refuse an event older than it (Events.Read). Each
// consumer records the value it runs with (RecordRetention) and the relay
// prunes with the longest of its own and those (RecordedRetentions), so a
// relay set shorter does not prune the record of an event a consumer accepts
// (a raised consumer's window grows from its previous one, Window); the
// exceptions (a consumer's first record, a relay not granted SELECT on the
// table, a rollout lowering a retention) are in docs/events.md.
const DefaultRetention = 30 * 24 * time.Hour

// RetentionFrom reads INBOX_RETENTION (default DefaultRetention): the outbox
// relay's prune and the consumers' refusal of old events both read it, and
// both refuse alike (a problem collected in c) a value that is not above
// MaxClockSkew, the consumers' window being the retention less that.
func RetentionFrom(c *config.Reader) time.Duration {
	r := c.Duration("INBOX_RETENTION", DefaultRetention)
	if err := CheckRetention(r); err != nil {
		c.Fail("INBOX_RETENTION", err)
		return DefaultRetention
	}
	return r
}

// CheckRetention refuses an inbox retention that is not above MaxClockSkew:
// the consumers would accept no event at all (their window is the retention
// less MaxClockSkew), and the relay would prune the records of events they
// still accept.
func CheckRetention(r time.Duration) error {
	if r <= MaxClockSkew {
		return fmt.Errorf("the inbox retention (%s) must be above %s, the clock skew the consumers allow", r, MaxClockSkew)
	}
	return nil
}

// Schema is the table of processed events every consuming service database
// has. Service migrations include it verbatim (a test checks that they do).
// The key is (event_id, consumer): two consumers sharing a database each
// process the same event once, without stealing it from each other.
const Schema = `CREATE TABLE IF NOT EXISTS processed_events (
	event_id     uuid NOT NULL,
	consumer     text NOT NULL CHECK (consumer <> ''),
	processed_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (event_id, consumer)
);`

// Claim records that consumer processed eventID, on tx. first is true when
// this is the first claim: the caller then applies the effect on the same tx.
// first is false for a duplicate delivery, whose effect (committed by an
// earlier transaction) the caller must not apply again. A concurrent claim of
// the same id waits for the other transaction and then reports false if it
// committed, true if it rolled back, so exactly one effect ever commits.
func Claim(ctx context.Context, tx pgx.Tx, eventID uuid.UUID, consumer string) (first bool, err error) {
	if err := checkClaim(eventID, consumer); err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, claimSQL, eventID, consumer)
	if err != nil {
		return false, fmt.Errorf("inbox: claim event: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// QueueClaim queues Claim's statement on b, for a transaction sent as batches
// (postgres.BatchTx), so the claim travels with the statements of the effect
// that do not depend on its answer: the claim's result sets *first when b's
// results are read. The caller must still apply no effect of its own when
// *first is false (it rolls the transaction back, or its statements are ones
// a duplicate leaves unchanged). It fails only on a missing id or consumer.
func QueueClaim(b *pgx.Batch, eventID uuid.UUID, consumer string, first *bool) error {
	if err := checkClaim(eventID, consumer); err != nil {
		return err
	}
	b.Queue(claimSQL, eventID, consumer).Exec(func(tag pgconn.CommandTag) error {
		*first = tag.RowsAffected() == 1
		return nil
	})
	return nil
}

const claimSQL = `INSERT INTO processed_events (event_id, consumer) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`

// checkClaim refuses a claim without an event id or a consumer.
func checkClaim(eventID uuid.UUID, consumer string) error {
	if eventID == uuid.Nil || consumer == "" {
		return fmt.Errorf("inbox: event id and consumer are required")
	}
	return nil
}

// PruneIndex lets Prune find the records past the retention without reading
// the others. Service migrations include it verbatim after Schema, alone in a
// postgres.NoTransaction migration: it builds concurrently, so the consumers'
// claims go on while it builds on a table that already holds a month of
// records.
const PruneIndex = `CREATE INDEX CONCURRENTLY IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);`

// PruneBatches is the most batches (postgres.DeleteBatch rows each) one
// Prune deletes.
const PruneBatches = 20

// Prune deletes processed-event records older than olderThan from the
// database behind db, when it has the table (not every service consumes
// events). The outbox relay calls it with its inbox retention (or a
// consumer's recorded there, RecordedRetentions, when longer); a delivery
// older than that (e.g. a dead letter replayed months later) would no longer
// be recognised as a duplicate, so consumers refuse an event whose envelope
// time is that old (Events.Read, with the same INBOX_RETENTION).
//
// It reads only the records it deletes, through PruneIndex (nothing is
// pruned until that index is built and valid, and log is warned of it once
// an hour per database, warnUnpruned): the table holds
// the retention's records (30 days in the relay), and a DELETE by age with
// no index read them all at every cleanup (docs/performance.md, item 35).
// The records go in batches, oldest first (postgres.DeleteBatches), each
// an ordered walk of the index with a LIMIT, so no plan reads the table
// whatever its statistics. One call deletes at most PruneBatches batches:
// the relay prunes in the loop that publishes that database's events, so a
// backlog (after a relay outage, or a lowered INBOX_RETENTION) goes over
// several cleanups instead of holding the events up; until 2026-12-06 one
// cleanup deleted the whole backlog.
func Prune(ctx context.Context, db postgres.Querier, olderThan time.Duration, log *slog.Logger) (int64, error) {
	// Until a service's migration has built PruneIndex, each batch would
	// read the whole table: nothing is pruned before the index is valid
	// (nor where the table is missing). A concurrent build shows the index
	// before it is ready, and one that failed leaves it invalid until the
	// next start builds it again; until 2026-12-08 the table's existence
	// was enough (TestPruneWaitsForAValidIndex).
	var table, valid bool
	var database string
	if err := db.QueryRow(ctx, `SELECT to_regclass('processed_events') IS NOT NULL, coalesce((SELECT indisvalid FROM pg_index
		WHERE indexrelid = to_regclass('processed_events_processed_at')), false), current_database()`).Scan(&table, &valid, &database); err != nil {
		return 0, err
	}
	if !valid {
		if table {
			warnUnpruned(log, database)
		}
		return 0, nil
	}
	deleted, err := postgres.DeleteBatches(ctx, db, PruneBatches, `DELETE FROM processed_events WHERE ctid = ANY(ARRAY(SELECT ctid
		FROM processed_events WHERE processed_at < now() - make_interval(secs => $1) ORDER BY processed_at LIMIT $2))`,
		olderThan.Seconds())
	if err != nil {
		return deleted, fmt.Errorf("prune processed events: %w", err)
	}
	return deleted, nil
}

// unprunedWarnEvery is how often Prune warns again of a database whose
// processed_events it cannot prune (warnUnpruned): at every cleanup (10
// minutes) would be noise, never (until 2026-12-08) let the table grow unseen.
const unprunedWarnEvery = time.Hour

// unprunedWarned holds when each database was last warned of.
var (
	unprunedMu     sync.Mutex
	unprunedWarned = map[string]time.Time{}
)

// warnUnpruned warns that database's processed_events is not pruned, its
// PruneIndex missing or invalid, at most once per unprunedWarnEvery.
func warnUnpruned(log *slog.Logger, database string) {
	unprunedMu.Lock()
	last, seen := unprunedWarned[database]
	now := time.Now()
	if seen && now.Sub(last) < unprunedWarnEvery {
		unprunedMu.Unlock()
		return
	}
	unprunedWarned[database] = now
	unprunedMu.Unlock()
	log.Warn("processed_events is not pruned: its index processed_events_processed_at is missing or invalid (the service's migration builds it at start; see the PostgreSQL log for a failed CREATE INDEX CONCURRENTLY)",
		"database", database, "again_within", unprunedWarnEvery.String())
}
