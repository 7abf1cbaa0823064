package inbox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/shopfaas/shop/internal/postgres"
)

// RetentionSchema is the table in which each consumer of a service database
// records the inbox retention it runs with (RecordRetention), so that the
// outbox relay, a process of its own with an INBOX_RETENTION of its own,
// does not prune a processed-event record (or a catalog sale) that a
// consumer still needs to recognise a duplicate (RecordedRetentions; the
// exceptions are in DefaultRetention's doc). Service
// migrations include it verbatim (a test checks that they do).
const RetentionSchema = `CREATE TABLE IF NOT EXISTS inbox_retentions (
	consumer          text PRIMARY KEY CHECK (consumer <> ''),
	retention_seconds double precision NOT NULL CHECK (retention_seconds > 0),
	recorded_at       timestamptz NOT NULL DEFAULT now()
);`

// RetentionRaiseSchema adds to inbox_retentions what a consumer whose
// retention was raised needs to know (RecordRetention): the window it had
// just before the raise and when the raise was recorded. Service migrations
// include it verbatim (catalog 0012, users 0009; a test checks that they do).
// The relay's SELECT on the table covers the new columns.
const RetentionRaiseSchema = `ALTER TABLE inbox_retentions
	ADD COLUMN IF NOT EXISTS previous_retention_seconds double precision CHECK (previous_retention_seconds > 0),
	ADD COLUMN IF NOT EXISTS raised_at timestamptz;`

// RetentionFiniteSchema refuses a NaN or an Infinity in inbox_retentions'
// retention columns: RetentionSchema's and RetentionRaiseSchema's CHECK
// (... > 0) accept both (in PostgreSQL 'NaN' is above every number). No
// build writes one (RecordRetention records a time.Duration, always finite,
// read from INBOX_RETENTION, which config.Reader.Duration refuses as "NaN"
// or "Inf" or past 292 years); only a hand-written row holds one. Existing
// ones are rewritten first, each to what it meant to the relay and the
// consumers: a retention to 1e10 seconds (317 years, past the longest
// time.Duration, 292 years, which RecordedRetentions reads as for ever, as
// it read NaN and Infinity: the relay goes on keeping that database's
// records), a previous window to NULL (the window was already the
// retention: least() ranks NaN and Infinity above any number). The
// constraints are dropped before they are added, so that it may run again.
// Service migrations include it verbatim (catalog 0013, users 0010; a test
// checks that they do).
const RetentionFiniteSchema = `UPDATE inbox_retentions SET retention_seconds = 1e10
	WHERE NOT (retention_seconds < 'Infinity');
UPDATE inbox_retentions SET previous_retention_seconds = NULL
	WHERE NOT (previous_retention_seconds < 'Infinity');
ALTER TABLE inbox_retentions
	DROP CONSTRAINT IF EXISTS inbox_retentions_retention_seconds_finite,
	ADD CONSTRAINT inbox_retentions_retention_seconds_finite CHECK (retention_seconds < 'Infinity'),
	DROP CONSTRAINT IF EXISTS inbox_retentions_previous_retention_seconds_finite,
	ADD CONSTRAINT inbox_retentions_previous_retention_seconds_finite CHECK (previous_retention_seconds < 'Infinity');`

// Window is the age past which a consumer refuses an event (Events): its
// retention, or, while a raise of it is recent, less (At).
type Window struct {
	// Retention is the consumer's INBOX_RETENTION.
	Retention time.Duration
	// Previous, when not zero, is the window the consumer had when its
	// retention was raised to Retention, at RaisedAt (on this process's
	// clock): the outbox relay pruned the records of events older than
	// Previous until then, so the window grows from Previous by the time
	// since the raise.
	Previous time.Duration
	RaisedAt time.Time
}

// At is the window at now: min(Retention, Previous + (now - RaisedAt)) after
// a raise, Retention otherwise. A record the relay pruned before the raise
// (older than Previous then) is older than that window at any later time, so
// the event it was the record of is refused rather than applied again.
func (w Window) At(now time.Time) time.Duration {
	if w.Previous <= 0 || w.Previous >= w.Retention {
		return w.Retention
	}
	return min(w.Retention, w.Previous+max(0, now.Sub(w.RaisedAt)))
}

// effectiveSeconds is the SQL of a recorded row's window now (Window.At), r
// being inbox_retentions.
const effectiveSeconds = `CASE WHEN r.raised_at IS NULL OR r.previous_retention_seconds IS NULL THEN r.retention_seconds
	ELSE least(r.retention_seconds, r.previous_retention_seconds + greatest(0, extract(epoch FROM now() - r.raised_at)::double precision)) END`

// RecordRetention records, in the database behind db, that consumer (the
// name it claims events with) refuses events older than retention
// (Events.Read): an upsert, the last build of the consumer wins. A consumer
// calls it as it is built, before it reads any event, and reads events with
// the Window it returns (Events.Since); an error (the table missing, the
// database unavailable) fails the build.
//
// A retention longer than the window recorded so far (a raise) is recorded
// with that window and the time of the raise: the relay pruned with the
// shorter one until now, so the consumer's window grows from it with time
// (Window.At) rather than reaching at once events whose records may be gone.
// A retention no longer than that window takes effect at once. A consumer's
// first record has no previous one: its window is its retention at once,
// which is safe only where the relay's INBOX_RETENTION was at least as long
// until then (docs/events.md, "Outbox relay").
func RecordRetention(ctx context.Context, db postgres.Querier, consumer string, retention time.Duration) (Window, error) {
	if consumer == "" {
		return Window{}, errors.New("inbox: record retention: the consumer is required")
	}
	if err := CheckRetention(retention); err != nil {
		return Window{}, fmt.Errorf("inbox: record retention: %w", err)
	}
	var previous, since *float64
	if err := db.QueryRow(ctx, `INSERT INTO inbox_retentions AS r (consumer, retention_seconds) VALUES ($1, $2)
		ON CONFLICT (consumer) DO UPDATE SET
			previous_retention_seconds = CASE WHEN excluded.retention_seconds > `+effectiveSeconds+` THEN `+effectiveSeconds+` END,
			raised_at = CASE WHEN excluded.retention_seconds > `+effectiveSeconds+` THEN now() END,
			retention_seconds = excluded.retention_seconds, recorded_at = now()
		RETURNING r.previous_retention_seconds, extract(epoch FROM now() - r.raised_at)::double precision`,
		consumer, retention.Seconds()).Scan(&previous, &since); err != nil {
		return Window{}, fmt.Errorf("inbox: record retention of %s: %w", consumer, err)
	}
	w := Window{Retention: retention}
	if previous != nil && since != nil {
		// The time since the raise, on the database's clock, is carried
		// over to this process's: the two clocks need not agree.
		w.Previous = time.Duration(*previous * float64(time.Second))
		w.RaisedAt = time.Now().Add(-time.Duration(*since * float64(time.Second)))
	}
	return w, nil
}

// Recorded is one consumer's retention as RecordRetention recorded it.
type Recorded struct {
	Consumer  string
	Retention time.Duration
}

// ErrRetentionsUnreadable is RecordedRetentions' answer where the table
// exists but db's role may not read it (a database migrated before the
// relay's role existed, whose grants split-roles.sh has not given yet).
var ErrRetentionsUnreadable = errors.New("inbox: no SELECT on inbox_retentions (the service's inbox_retentions migration, split-roles.sh)")

// RecordedRetentions reads every consumer's recorded retention in the
// database behind db, ordered by consumer: none where the table does not
// exist (not every service database has consumers, nor is every one migrated
// yet); ErrRetentionsUnreadable where db may not read it; any other failure
// wrapped. The outbox relay prunes with the greatest of them and its own.
func RecordedRetentions(ctx context.Context, db postgres.Querier) ([]Recorded, error) {
	var exists, readable bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('inbox_retentions') IS NOT NULL,
		coalesce(has_table_privilege(to_regclass('inbox_retentions'), 'SELECT'), false)`).Scan(&exists, &readable); err != nil {
		return nil, fmt.Errorf("inbox: recorded retentions: %w", err)
	}
	switch {
	case !exists:
		return nil, nil
	case !readable:
		return nil, ErrRetentionsUnreadable
	}
	// A handful of rows (one per consumer of the database), read as one
	// array so that db needs only QueryRow.
	var consumers []string
	var seconds []float64
	if err := db.QueryRow(ctx, `SELECT coalesce(array_agg(consumer ORDER BY consumer), '{}'),
		coalesce(array_agg(retention_seconds ORDER BY consumer), '{}') FROM inbox_retentions`).Scan(&consumers, &seconds); err != nil {
		return nil, fmt.Errorf("inbox: recorded retentions: %w", err)
	}
	out := make([]Recorded, len(consumers))
	for i, c := range consumers {
		r := time.Duration(math.MaxInt64) // past 292 years: for ever
		if s := seconds[i]; s < r.Seconds() {
			r = time.Duration(s * float64(time.Second))
		}
		out[i] = Recorded{Consumer: c, Retention: r}
	}
	return out, nil
}
