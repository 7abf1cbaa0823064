package pgtest

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RoundTrips is a pgx tracer that counts what a pool sends PostgreSQL: round
// trips (a statement, or a whole batch), statements (each query of a batch
// counts) and commits: explicit COMMITs, and writes sent outside a
// transaction (a statement or batch that commits on its own), and of those the
// durable ones: every commit but those of a batch that turns
// synchronous_commit off for its transaction (it does not wait for the WAL to
// reach the disk). Ping is not traced by pgx and costs nothing here.
type RoundTrips struct {
	mu                                  sync.Mutex
	trips, statements, commits, durable int
}

// Counts is a snapshot of a RoundTrips.
type Counts struct{ Trips, Statements, Commits, Durable int }

// Counted returns a pool over the same database as pool whose every query is
// counted by the returned tracer, connected already (connecting is not
// counted), and closed when the test ends.
func Counted(tb testing.TB, pool *pgxpool.Pool) (*pgxpool.Pool, *RoundTrips) {
	tb.Helper()
	pc := pool.Config()
	rt := &RoundTrips{}
	pc.ConnConfig.Tracer = rt
	counted, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		tb.Fatalf("counted pool: %v", err)
	}
	tb.Cleanup(counted.Close)
	if err := counted.Ping(context.Background()); err != nil {
		tb.Fatalf("counted pool: %v", err)
	}
	rt.Reset()
	return counted, rt
}

// Reset sets every count to zero.
func (r *RoundTrips) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trips, r.statements, r.commits, r.durable = 0, 0, 0, 0
}

// Counts returns the counts since the last Reset.
func (r *RoundTrips) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Counts{Trips: r.trips, Statements: r.statements, Commits: r.commits, Durable: r.durable}
}

// TraceQueryStart counts one round trip and statement, and a commit.
func (r *RoundTrips) TraceQueryStart(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trips++
	r.statements++
	if isCommit(d.SQL) || (idle(c) && writes(d.SQL)) {
		r.commits++
		r.durable++
	}
	return ctx
}

// TraceQueryEnd does nothing.
func (r *RoundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart counts one round trip for the whole batch, and its commits:
// every COMMIT it carries, or one when it writes outside a transaction and
// does not begin one (it then runs as one implicit transaction).
func (r *RoundTrips) TraceBatchStart(ctx context.Context, c *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trips++
	if d.Batch == nil {
		return ctx
	}
	qs := d.Batch.QueuedQueries
	implicit := idle(c) && (len(qs) == 0 || !begins(qs[0].SQL))
	wrote, commits, async := false, 0, false
	for _, q := range qs {
		if isCommit(q.SQL) {
			commits++
		}
		wrote = wrote || writes(q.SQL)
		async = async || asyncCommit(q.SQL)
	}
	if implicit && wrote {
		commits++
	}
	r.commits += commits
	if !async {
		r.durable += commits
	}
	return ctx
}

// TraceBatchQuery counts one statement of a batch.
func (r *RoundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statements++
}

// TraceBatchEnd does nothing.
func (r *RoundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// idle reports whether c is outside a transaction block.
func idle(c *pgx.Conn) bool { return c != nil && c.PgConn().TxStatus() == 'I' }

// isCommit reports whether sql is a COMMIT.
func isCommit(sql string) bool { return strings.EqualFold(strings.TrimSpace(sql), "commit") }

// asyncCommit reports whether sql turns synchronous_commit off for the
// transaction.
func asyncCommit(sql string) bool {
	return strings.Join(strings.Fields(strings.ToLower(sql)), " ") == "set local synchronous_commit = off"
}

// begins reports whether sql begins a transaction block.
func begins(sql string) bool {
	s := strings.ToLower(strings.TrimSpace(sql))
	return strings.HasPrefix(s, "begin") || strings.HasPrefix(s, "start transaction")
}

// writes reports whether sql changes data (and so commits when it runs
// outside a transaction).
func writes(sql string) bool {
	s := strings.ToLower(strings.TrimSpace(sql))
	for _, w := range []string{"insert", "update", "delete"} {
		if strings.HasPrefix(s, w) {
			return true
		}
	}
	return strings.HasPrefix(s, "with") &&
		(strings.Contains(s, "insert into") || strings.Contains(s, "update ") || strings.Contains(s, "delete from"))
}
