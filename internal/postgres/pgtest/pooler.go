package pgtest

import (
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// BehindPooler returns a pool over the same database as pool (its
// configuration copied, closed when the test ends) whose connections report
// a process id that is not their server process's, as connections through
// PgBouncer do (it answers each client with a BackendKeyData of its own):
// for tests of what a caller that looks for its connection's server process
// does behind a pooler.
func BehindPooler(tb testing.TB, pool *pgxpool.Pool) *pgxpool.Pool {
	tb.Helper()
	return redialed(tb, pool, "pool behind a pooler", func(conn net.Conn) net.Conn { return &pidRewriter{Conn: conn} })
}

// pidRewriter is a connection whose server messages pass through unchanged
// but BackendKeyData ('K'), whose process id is moved out of the range of
// real ones. It reads the server's stream message by message: a header (the
// whole of a BackendKeyData), passed on from pending, then the rest of the
// message as the reader asks for it.
type pidRewriter struct {
	net.Conn
	pending []byte // read and not passed on yet
	rest    int    // bytes of the current message not read yet
}

func (c *pidRewriter) Read(p []byte) (int, error) {
	if len(c.pending) == 0 && c.rest > 0 {
		n, err := c.Conn.Read(p[:min(len(p), c.rest)])
		c.rest -= n
		return n, err
	}
	if len(c.pending) == 0 {
		head := make([]byte, 5)
		if _, err := io.ReadFull(c.Conn, head); err != nil {
			return 0, err
		}
		size := int(binary.BigEndian.Uint32(head[1:])) - 4
		if head[0] == 'K' && size == 8 {
			body := make([]byte, 8)
			if _, err := io.ReadFull(c.Conn, body); err != nil {
				return 0, err
			}
			binary.BigEndian.PutUint32(body, binary.BigEndian.Uint32(body)|1<<30)
			head, size = append(head, body...), 0
		}
		c.pending, c.rest = head, size
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}
