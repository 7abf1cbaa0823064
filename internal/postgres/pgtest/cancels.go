package pgtest

import (
	"context"
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// cancelRequestCode opens a CancelRequest message, the whole of a
// connection of its own (PostgreSQL's frontend/backend protocol).
const cancelRequestCode = 80877102

// Cancels counts the cancel requests a pool of WithoutCancels dropped.
type Cancels struct{ dropped atomic.Int64 }

// Dropped is how many cancel requests never reached the server.
func (c *Cancels) Dropped() int { return int(c.dropped.Load()) }

// WithoutCancels returns a pool over the same database as pool (its
// configuration copied, closed when the test ends) whose cancel requests
// never reach the server. pgx sends one when a caller's deadline cuts a
// query short; the protocol makes it best effort (it travels on a connection
// of its own, and a backend between two statements ignores it), so a
// statement the client gave up on may still run to its end. This pool makes
// that the rule, for tests of what a caller concludes after a deadline.
func WithoutCancels(tb testing.TB, pool *pgxpool.Pool) (*pgxpool.Pool, *Cancels) {
	tb.Helper()
	c := &Cancels{}
	return redialed(tb, pool, "pool without cancels", func(conn net.Conn) net.Conn { return &cancelDropper{Conn: conn, c: c} }), c
}

// redialed returns a pool over the same database as pool (its configuration
// copied, closed when the test ends) whose every connection, cancel requests'
// included, is wrap's wrapping of the one pool would have dialled; what
// names the pool in a failure.
func redialed(tb testing.TB, pool *pgxpool.Pool, what string, wrap func(net.Conn) net.Conn) *pgxpool.Pool {
	tb.Helper()
	pc := pool.Config()
	dial := pc.ConnConfig.DialFunc
	pc.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wrap(conn), nil
	}
	p, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	tb.Cleanup(p.Close)
	return p
}

// cancelDropper is a connection that closes instead of sending a
// CancelRequest (its first write: pgx writes the message whole).
type cancelDropper struct {
	net.Conn
	c       *Cancels
	written bool
}

func (d *cancelDropper) Write(p []byte) (int, error) {
	if !d.written {
		d.written = true
		if len(p) >= 8 && binary.BigEndian.Uint32(p[4:8]) == cancelRequestCode {
			d.c.dropped.Add(1)
			_ = d.Conn.Close()
			return len(p), nil
		}
	}
	return d.Conn.Write(p)
}
