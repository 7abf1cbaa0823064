package postgres

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DoubtOf is doubt, the classification of a write's error on c.
func DoubtOf(c *pgconn.PgConn, err error) error { return doubt(c, err) }

// SetFinishTimeout shortens Detached's timeout for the test.
func SetFinishTimeout(tb testing.TB, d time.Duration) {
	old := finishTimeout
	finishTimeout = d
	tb.Cleanup(func() { finishTimeout = old })
}

// SetMigrationRetry sets, for the test, how many times a migration whose
// locks were not granted in time is tried, and the first wait between tries.
func SetMigrationRetry(tb testing.TB, tries int, wait time.Duration) {
	oldTries, oldWait := migrationTries, migrationRetryWait
	migrationTries, migrationRetryWait = tries, wait
	tb.Cleanup(func() { migrationTries, migrationRetryWait = oldTries, oldWait })
}
