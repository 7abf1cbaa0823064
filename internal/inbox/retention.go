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
// never prunes a processed-event record (or a catalog sale) that a consumer
// still needs to recognise a duplicate (RecordedRetentions). Service
// migrations include it verbatim (a test checks that they do).
const RetentionSchema = `CREATE TABLE IF NOT EXISTS inbox_retentions (
	consumer          text PRIMARY KEY CHECK (consumer <> ''),
	retention_seconds double precision NOT NULL CHECK (retention_seconds > 0),
	recorded_at       timestamptz NOT NULL DEFAULT now()
);`

// RecordRetention records, in the database behind db, that consumer (the
// name it claims events with) refuses events older than retention
// (Events.Read): an upsert, the last build of the consumer wins. A consumer
// calls it as it is built, before it reads any event; an error (the table
// missing, the database unavailable) fails the build.
func RecordRetention(ctx context.Context, db postgres.Querier, consumer string, retention time.Duration) error {
	if consumer == "" {
		return errors.New("inbox: record retention: the consumer is required")
	}
	if err := CheckRetention(retention); err != nil {
		return fmt.Errorf("inbox: record retention: %w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO inbox_retentions (consumer, retention_seconds) VALUES ($1, $2)
		ON CONFLICT (consumer) DO UPDATE SET retention_seconds = excluded.retention_seconds, recorded_at = now()`,
		consumer, retention.Seconds()); err != nil {
		return fmt.Errorf("inbox: record retention of %s: %w", consumer, err)
	}
	return nil
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
