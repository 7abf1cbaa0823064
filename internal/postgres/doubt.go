package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Doubt is the error of a write whose outcome the client cannot know: its
// statements went out, and no answer came back (the caller's deadline cut the
// wait, or the connection broke). pgx then closes the connection, but the
// server's backend does not learn of it until it next reads from the socket:
// it may still be running the write — waiting behind another transaction's
// lock, or for its commit to reach the disk — and commit it after a read that
// found nothing. So a read of what the write would have written is conclusive
// only once that backend has stopped: see Settle. SendBatch, ExecTx,
// BatchTx.Commit and Tx answer one for a write in doubt.
type Doubt struct {
	// PID is the server process that ran the write (pgconn.PgConn.PID).
	PID uint32
	Err error
}

func (d *Doubt) Error() string { return fmt.Sprintf("outcome unknown (backend %d): %v", d.PID, d.Err) }
func (d *Doubt) Unwrap() error { return d.Err }

// SendBatch sends b on a connection of pool as one round trip and reads
// every result. Without a BEGIN of its own, PostgreSQL runs the batch as one
// implicit transaction. An error that leaves open whether that transaction
// committed is a *Doubt naming the backend that ran it; an error PostgreSQL
// answered (*pgconn.PgError: the transaction rolled back) or one raised
// before anything was sent is returned as it is.
func SendBatch(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return doubt(conn.Conn().PgConn().PID(), conn.SendBatch(ctx, b).Close())
}

// inDoubt reports whether a batch that ended with err may have committed:
// it went out, and the server's answer is not what ended it.
func inDoubt(err error) bool {
	var pgErr *pgconn.PgError
	return err != nil && !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err) && !errors.Is(err, errCommitRolledBack)
}

// doubt is err as a *Doubt naming backend pid when it leaves the outcome
// open (inDoubt), err otherwise.
func doubt(pid uint32, err error) error {
	if inDoubt(err) {
		return &Doubt{PID: pid, Err: err}
	}
	return err
}

// finishByKey is the context key of FinishBy's time.
type finishByKey struct{}

// FinishBy returns ctx carrying t as the latest end of the Detached work
// started on it, the COMMIT of ExecTx, BatchTx.Commit and Tx included:
// Detached then bounds that work by its own timeout or t, whichever comes
// first (a t already past ends it at once). For a caller with a deadline
// of its own to keep, such as a saga's: a COMMIT cut at t is in doubt
// (*Doubt), and Settle tells whether it committed.
func FinishBy(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, finishByKey{}, t)
}

// settleWait is how long Settle waits for a backend it terminated to exit.
const settleWait = time.Second

// Settle ends the doubt err leaves (see Doubt): when err holds a *Doubt
// whose backend still runs in this database under this role, it terminates
// that backend and waits, up to a second, for it to exit. Whatever the write
// did is then committed or rolled back for good, and a read tells which
// (PostgreSQL finishes a commit already being written before the backend
// exits). nil then, and when err holds no doubt; an error when the database
// cannot be asked (the caller still does not know) or the backend has not
// exited yet (ask again).
//
// The backend is found by its process id, which the server may give a new
// backend once the old one has exited: Settle could then end a connection
// the pool just opened (its request fails, as on any broken connection),
// never make a write look settled that is not. This assumes direct
// connections to PostgreSQL: behind a pooler in transaction mode the id is
// not the backend's. Terminating a backend of one's own role needs no
// privilege (PostgreSQL 14 or later for the wait).
func Settle(ctx context.Context, pool *pgxpool.Pool, err error) error {
	var d *Doubt
	if !errors.As(err, &d) {
		return nil
	}
	var exited bool
	qerr := pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid, $2) FROM pg_stat_activity
		WHERE pid = $1 AND datname = current_database() AND usename = current_user AND pid <> pg_backend_pid()`,
		int64(d.PID), settleWait.Milliseconds()).Scan(&exited)
	switch {
	case errors.Is(qerr, pgx.ErrNoRows):
		return nil // gone already
	case qerr != nil:
		return fmt.Errorf("settle a write in doubt: %w", qerr)
	case !exited:
		return fmt.Errorf("settle a write in doubt: backend %d has not exited yet", d.PID)
	}
	return nil
}
