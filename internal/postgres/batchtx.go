package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BatchTx is a transaction sent as batches on one connection of a pool: its
// BEGIN travels in front of the first batch (BeginBatch, pgx Batch.BeginTx)
// and its COMMIT behind the last one (Commit), so a transaction of n batches
// costs n round trips where Tx costs n + 2. It is for a store whose
// transaction is a fixed sequence of batches, each depending on what the one
// before answered (a read, then the writes it decides; the writes, then the
// events built from what they returned).
//
// A statement that fails aborts the transaction: the rest of its batch is
// skipped by PostgreSQL, COMMIT included, and Rollback (deferred right after
// BeginBatch) rolls it back and gives the connection back to the pool. Like
// Tx, the COMMIT and the rollback use a Detached context.
type BatchTx struct {
	conn *pgxpool.Conn // nil once released
	tx   pgx.Tx        // the transaction the first batch began, on conn
}

// errCommitRolledBack is Commit's answer when PostgreSQL rolled the
// transaction back at COMMIT (it was aborted already).
var errCommitRolledBack = errors.New("commit: the transaction was rolled back")

// BeginBatch acquires a connection of pool and sends BEGIN followed by b's
// statements in one round trip. BEGIN's own result is read already: the
// returned results start with b's first statement. The caller reads them and
// closes them, then sends further batches with SendBatch and ends the
// transaction with Commit or Rollback; Rollback is safe to defer and a no-op
// after Commit. b must not begin a transaction itself.
func BeginBatch(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) (*BatchTx, pgx.BatchResults) {
	first := &pgx.Batch{}
	first.BeginTx(pgx.TxOptions{})
	first.QueuedQueries = append(first.QueuedQueries, b.QueuedQueries...)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return &BatchTx{}, pgx.FailedBatchResults(b, err)
	}
	br := conn.SendBatch(ctx, first)
	t := &BatchTx{conn: conn, tx: br.Tx()}
	_, _ = br.Exec() // BEGIN; when it fails, so does every later result of br
	return t, br
}

// SendBatch sends b inside the transaction (one round trip). The results
// must be closed before the transaction is used again.
func (t *BatchTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.conn == nil {
		return pgx.FailedBatchResults(b, pgx.ErrTxClosed)
	}
	return t.tx.SendBatch(ctx, b)
}

// Commit sends b's statements followed by COMMIT in one round trip (b may be
// nil: COMMIT alone) and gives the connection back to the pool. When one of
// b's statements fails, nothing of the transaction is committed: the
// statement's error is returned and the transaction is rolled back. When no
// answer came back, the error is a *Doubt (see Settle).
func (t *BatchTx) Commit(ctx context.Context, b *pgx.Batch) error {
	if t.conn == nil {
		return pgx.ErrTxClosed
	}
	if b == nil {
		b = &pgx.Batch{}
	}
	b.Queue("commit").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return errCommitRolledBack
		}
		return nil
	})
	dctx, cancel := Detached(ctx)
	defer cancel()
	pc := t.conn.Conn().PgConn()
	err := t.tx.SendBatch(dctx, b).Close()
	err = doubt(pc, err) // before Rollback, which may close the connection
	t.Rollback(ctx)      // after COMMIT, only gives the connection back
	return err
}

// ExecTx runs b's statements as one transaction in one round trip: BEGIN in
// front of them and COMMIT behind, in one batch (a transaction of n batches
// costs n round trips with BatchTx; one that reads nothing its writes depend
// on needs only this one). A statement that fails makes PostgreSQL skip the
// rest of the batch, COMMIT included: nothing is committed, the statement's
// error is returned and the transaction is rolled back (the connection goes
// back to the pool). So a condition the writes depend on must be checked by
// PostgreSQL, as a statement that fails when it does not hold (an
// assertion), never by the client after reading a result: by then the batch
// has committed. Like Tx's COMMIT, the batch is sent on a Detached context
// (ctx bounds acquiring the connection only), so the caller always learns
// whether it committed, short of a broken or silent connection (then the
// error is a *Doubt: see Settle). b must not begin or end a transaction
// itself.
func ExecTx(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	all := &pgx.Batch{}
	all.Queue("begin")
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	all.Queue("commit").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return errCommitRolledBack
		}
		return nil
	})
	detached, cancel := Detached(ctx)
	defer cancel()
	err = doubt(conn.Conn().PgConn(), conn.SendBatch(detached, all).Close())
	// A failed statement leaves the transaction open (aborted): roll it back
	// so the connection goes back to the pool clean. A broken connection is
	// closed by pgx, and the pool drops it.
	if c := conn.Conn(); err != nil && !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
		_, _ = c.Exec(detached, "rollback")
	}
	return err
}

// ReadTx runs b's statements, which read and change nothing but their own
// transaction's settings (SET LOCAL), as one read-only transaction in one
// round trip: BEGIN READ ONLY in front of them and ROLLBACK behind. Unlike
// ExecTx, whose COMMIT must be answered, the batch is sent on ctx itself:
// a read has no outcome to learn, so it ends at the caller's deadline or
// hang-up with ctx's error (pgx then cancels the query and closes the
// connection, which the pool drops), never with a *Doubt. A statement that
// fails is returned and the transaction rolled back (on a Detached context),
// so the connection goes back to the pool clean. b must not begin or end a
// transaction itself.
func ReadTx(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	all := &pgx.Batch{}
	all.Queue("begin read only")
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	all.Queue("rollback")
	err = conn.SendBatch(ctx, all).Close()
	if c := conn.Conn(); err != nil && !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
		detached, cancel := Detached(ctx)
		defer cancel()
		_, _ = c.Exec(detached, "rollback")
	}
	if err != nil && ctx.Err() != nil {
		// pgx may report the cancellation as its own (a closed
		// connection, a "timeout:" wrapper); the caller's reason is the
		// one to answer with.
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	return err
}

// Rollback rolls back the transaction unless it has ended already (committed,
// or never begun) and gives the connection back to the pool. It is safe to
// call more than once.
func (t *BatchTx) Rollback(ctx context.Context) {
	if t.conn == nil {
		return
	}
	conn := t.conn.Conn()
	if !conn.IsClosed() && conn.PgConn().TxStatus() != 'I' {
		// On failure pgx closes the connection, which the pool then drops.
		dctx, cancel := Detached(ctx)
		_, _ = conn.Exec(dctx, "rollback")
		cancel()
	}
	t.conn.Release()
	t.conn = nil
}
