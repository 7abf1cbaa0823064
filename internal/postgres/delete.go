package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is a pool, a connection or a transaction, for statements that run
// on whichever the caller holds.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// DeleteBatch is the most rows one statement of DeleteInBatches deletes.
const DeleteBatch = 5000

// DeleteInBatches runs del, a DELETE whose last parameter is the most rows it
// may delete, with args and DeleteBatch, until a run deletes fewer, and
// reports how many rows went. The batches bound each statement's locks and
// WAL. Each run is planned for its values (QueryExecModeExec), never from a
// generic plan cached on the session: the cleanups that use it run every few
// minutes on sessions that live for days (docs/performance.md, items 34 and
// 35). del should pick its rows with an ordered index walk and a LIMIT, e.g.
// `DELETE FROM t WHERE ctid = ANY(ARRAY(SELECT ctid FROM t WHERE … ORDER BY
// key LIMIT $n))`, so that no plan reads the table.
func DeleteInBatches(ctx context.Context, db Querier, del string, args ...any) (int64, error) {
	return DeleteBatches(ctx, db, 0, del, args...)
}

// DeleteBatches is DeleteInBatches that stops after max batches (0: none),
// for a cleanup that shares its loop with other work: a backlog is deleted
// over several runs instead of holding up that work until it is gone.
func DeleteBatches(ctx context.Context, db Querier, max int, del string, args ...any) (int64, error) {
	args = append(append([]any{pgx.QueryExecModeExec}, args...), DeleteBatch)
	var deleted int64
	for n := 1; ; n++ {
		tag, err := db.Exec(ctx, del, args...)
		if err != nil {
			return deleted, err
		}
		deleted += tag.RowsAffected()
		if tag.RowsAffected() < DeleteBatch || n == max {
			return deleted, nil
		}
	}
}
