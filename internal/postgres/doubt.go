package postgres

import (
	"cmp"
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
// wait, or the connection broke), or the server ended the session (a FATAL
// error, as at a fast shutdown) after a COMMIT it may have finished. pgx then
// closes the connection, but the server's backend does not learn of it until
// it next reads from the socket: it may still be running the write — waiting
// behind another transaction's lock, or for its commit to reach the disk —
// and commit it after a read that found nothing. So a read of what the write
// would have written is conclusive only once that backend has stopped: see
// Settle. SendBatch, ExecTx, BatchTx.Commit and Tx answer one for a write in
// doubt.
type Doubt struct {
	// PID is the server process that ran the write (pgconn.PgConn.PID).
	PID uint32
	// Err is the error the write ended with.
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
	return doubt(conn.Conn().PgConn(), conn.SendBatch(ctx, b).Close())
}

// doubt is err, the end of a write on c, as a *Doubt naming c's backend when
// it leaves the outcome open, err otherwise. It does only when pgx closed c:
// a connection still open read every answer the server sent, so the
// transaction's end is known (an error PostgreSQL answered rolled it back; an
// error of the client's own, such as a batch callback's, came after the
// answers). Of a closed connection, an error raised before anything was sent
// (pgconn.SafeToRetry) and an ERROR PostgreSQL answered are known too; a
// FATAL or PANIC may have come after the COMMIT was done. Not "conn closed"
// (pgconn.ErrConnClosed), though pgx says it is safe to retry: pgx answers it
// to a call on a connection closed before it, and also to a simple query,
// such as Tx's COMMIT, whose answer a failed read lost (the query went out;
// the read's error is dropped and the connection found closed), so it may
// follow a COMMIT the server ran.
func doubt(c *pgconn.PgConn, err error) error {
	if err == nil || !c.IsClosed() || pgconn.SafeToRetry(err) && !errors.Is(err, pgconn.ErrConnClosed) {
		return err
	}
	// SeverityUnlocalized: Severity is translated when the server's
	// lc_messages is not English ("ВАЖНО" is a FATAL).
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if sev := cmp.Or(pgErr.SeverityUnlocalized, pgErr.Severity); sev != "FATAL" && sev != "PANIC" {
			return err
		}
	}
	return &Doubt{PID: c.PID(), Err: err}
}

// finishByKey is the context key of FinishBy's time.
type finishByKey struct{}

// FinishBy returns ctx carrying t as the latest end of the Detached work
// started on it, the COMMIT of ExecTx, BatchTx.Commit and Tx included:
// Detached then bounds that work by its own timeout or t, whichever comes
// first (a t already past ends it at once; of two FinishBy times on one
// context, the earlier holds). For a caller with a deadline of its own to
// keep, such as a saga's: a COMMIT cut at t is in doubt (*Doubt), and Settle
// tells whether it committed.
func FinishBy(ctx context.Context, t time.Time) context.Context {
	if earlier, ok := ctx.Value(finishByKey{}).(time.Time); ok && earlier.Before(t) {
		return ctx
	}
	return context.WithValue(ctx, finishByKey{}, t)
}

// settleWait is how long Settle waits for a backend it terminated to exit.
const settleWait = time.Second

// errBehindPooler is Settle's answer when pool's connections do not reach
// PostgreSQL directly.
var errBehindPooler = errors.New("settle a write in doubt: the pool's connections go through a pooler " +
	"(their process ids are not their server processes'), so the write's process cannot be found")

// errNotCommitted is ReadSettled's reason when the write did not commit.
var errNotCommitted = errors.New("the write did not commit")

// ReadSettled tells whether a write that failed with err committed after
// all: when err holds a *Doubt (the COMMIT went out, its answer did not come
// back), it settles the doubt (Settle) and runs read, which reads the row the
// write made into the caller's variables and returns pgx.ErrNoRows when it is
// not there. nil: the write committed, and the caller answers what read read
// as a clean commit's answer (a 503 would invite a retry that the row, now
// there, refuses). Otherwise err, joined with why it is still not known: no
// doubt, a database that cannot tell (Settle never can behind a pooler), the
// write not committed, or read's error.
func ReadSettled(ctx context.Context, pool *pgxpool.Pool, err error, read func(context.Context) error) error {
	var d *Doubt
	if !errors.As(err, &d) {
		return err
	}
	if serr := Settle(ctx, pool, err); serr != nil {
		return errors.Join(err, serr)
	}
	if rerr := read(ctx); rerr != nil {
		if errors.Is(rerr, pgx.ErrNoRows) {
			rerr = errNotCommitted
		}
		return errors.Join(err, rerr)
	}
	return nil
}

// Settle ends the doubt err leaves (see Doubt): when err holds a *Doubt
// whose backend still runs in this database, it terminates that backend and
// waits, up to a second, for it to exit. Whatever the write did is then
// committed or rolled back for good, and a read tells which (PostgreSQL
// finishes a commit already being written before the backend exits). nil
// then, and when err holds no doubt; an error when the database cannot be
// asked (the caller still does not know), the backend has not exited yet
// (ask again), or it is not this role's to end.
//
// Settle fails closed where it cannot know: its own connection must be
// PostgreSQL's process it says it is, or the pool goes through a pooler
// (PgBouncer gives each client a process id of its own), and the write's
// process cannot be found: errBehindPooler. So an orders database must be
// reached directly, never through a pooler in transaction mode (see
// docs/checkout.md). The backend is found by its process id, which the
// server may give a new backend once the old one has exited: Settle could
// then end another connection to this database (its request fails, as on any
// broken connection), never make a write look settled that is not.
// Terminating a backend of one's own role needs no privilege (PostgreSQL 14
// or later for the wait).
func Settle(ctx context.Context, pool *pgxpool.Pool, err error) error {
	var d *Doubt
	if !errors.As(err, &d) {
		return nil
	}
	conn, aerr := pool.Acquire(ctx)
	if aerr != nil {
		return fmt.Errorf("settle a write in doubt: %w", aerr)
	}
	defer conn.Release()
	var direct bool
	var exited *bool // NULL: no such backend in this database
	// The ids are bigint: PgBouncer's, a random 32-bit number, may be out of
	// integer's range (pg_backend_pid's type), which failed the query.
	qerr := conn.QueryRow(ctx, `SELECT pg_backend_pid() = $3::bigint,
		(SELECT pg_terminate_backend(pid, $2) FROM pg_stat_activity
			WHERE pid = $1::bigint AND datname = current_database() AND pid <> pg_backend_pid()
			AND pg_backend_pid() = $3::bigint)`,
		int64(d.PID), settleWait.Milliseconds(), int64(conn.Conn().PgConn().PID())).Scan(&direct, &exited)
	switch {
	case qerr != nil:
		return fmt.Errorf("settle a write in doubt: %w", qerr)
	case !direct:
		return errBehindPooler
	case exited != nil && !*exited:
		return fmt.Errorf("settle a write in doubt: backend %d has not exited yet", d.PID)
	}
	return nil
}
