package pgtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Faults breaks the connections of a pool at a chosen point of the
// PostgreSQL protocol, for tests of what a caller does when a write's answer
// is lost: the write committed and the client learns nothing (the connection
// reset after COMMIT), or the connection broke before the write reached the
// server, which looks the same to the client. It sits in the pool's dialer,
// so it sees every byte each connection sends and receives; nothing else
// changes (the pool's statement cache, its tracer and its types are those of
// the pool it copies).
type Faults struct {
	mu    sync.Mutex
	armed *Fault
	fired int
	down  bool
	conns []*faultyConn
}

// Fault is one planned break.
type Fault struct {
	// Marker picks the round trip: the first one, on any connection, that
	// runs a statement whose SQL contains Marker (a Bind of a statement
	// prepared with it, or a simple query holding it).
	Marker string
	// Committed lets the server run that round trip to its end — the
	// transaction's COMMIT, or the end of a batch's implicit transaction,
	// included — and breaks the connection before any of its answer reaches
	// the client. Otherwise the connection breaks before the statement
	// reaches the server, which rolls back whatever the round trip began; the
	// client, whose write went out, cannot tell the two apart.
	Committed bool
	// Down leaves the server unreachable from the moment of the break, as
	// SetDown(true) does, until SetDown(false).
	Down bool
	// Then, if set, runs once the connection is broken (after Down), before
	// the client sees the break: what another client does in that instant,
	// e.g. changes the row the lost round trip wrote.
	Then func()
}

// WithFaults returns a pool over the same database as pool (its
// configuration copied, closed when the test ends) whose connections break
// as the returned Faults plans.
func WithFaults(tb testing.TB, pool *pgxpool.Pool) (*pgxpool.Pool, *Faults) {
	tb.Helper()
	f := &Faults{}
	pc := pool.Config()
	dial := pc.ConnConfig.DialFunc
	pc.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if f.isDown() {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := &faultyConn{Conn: conn, f: f, stmts: map[string]string{}}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		return c, nil
	}
	faulty, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		tb.Fatalf("pool with faults: %v", err)
	}
	tb.Cleanup(faulty.Close)
	return faulty, f
}

// Arm plans ft: the next round trip it picks breaks. It replaces a fault
// armed before that has not fired.
func (f *Faults) Arm(ft Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = &ft
}

// Fired reports how many planned faults have broken a connection.
func (f *Faults) Fired() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// SetDown makes the server unreachable (down) or reachable again: while it
// is down, connecting is refused and every open connection fails its next
// read or write, as when PostgreSQL stops or the network between goes away.
// A connection broken stays broken.
func (f *Faults) SetDown(down bool) {
	f.mu.Lock()
	f.down = down
	conns := slices.Clone(f.conns)
	f.mu.Unlock()
	if down {
		for _, c := range conns {
			c.breakOff()
		}
	}
}

func (f *Faults) isDown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

// take returns the armed fault when sql is what it picks, and disarms it.
func (f *Faults) take(sql string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.armed == nil || !strings.Contains(sql, f.armed.Marker) {
		return nil
	}
	ft := f.armed
	f.armed = nil
	return ft
}

// errBroken is what a broken connection answers its client: the peer reset
// it.
var errBroken = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

// faultyConn is one connection of a pool WithFaults. It reads the messages
// the client writes (PostgreSQL's frontend protocol: an untyped startup
// message, then a type byte and a length per message) to find the round trip
// a fault picks, and the server's messages (each typed) to find the end of
// that round trip, its ReadyForQuery. Round trips are counted by their sync
// points (the startup message, each Sync and each simple Query), each of
// which the server answers with one ReadyForQuery, in order.
type faultyConn struct {
	net.Conn
	f *Faults

	// Written by Write only.
	pending []byte            // the start of a message not complete yet
	started bool              // the startup message went out
	stmts   map[string]string // prepared statement name → SQL
	syncs   int               // sync points sent

	mu       sync.Mutex
	fault    *Fault // the fault this connection took
	withhold int    // the sync point whose answer is withheld (0: none)
	broken   bool

	// Read by Read only.
	in       []byte // the server's bytes, not a whole message yet
	ready    []byte // whole messages to hand the client
	answered int    // ReadyForQuery messages received
	readErr  error  // the server's error, once ready is handed out
}

func (c *faultyConn) isBroken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// breakOff breaks the connection: the server sees it close, the client's
// every later read and write fails.
func (c *faultyConn) breakOff() {
	c.mu.Lock()
	c.broken = true
	c.mu.Unlock()
	_ = c.Conn.Close()
}

// fire breaks the connection for its fault.
func (c *faultyConn) fire() {
	c.mu.Lock()
	ft := c.fault
	c.mu.Unlock()
	c.breakOff()
	c.f.mu.Lock()
	c.f.fired++
	c.f.mu.Unlock()
	if ft.Down {
		c.f.SetDown(true)
	}
	if ft.Then != nil {
		ft.Then()
	}
}

func (c *faultyConn) Write(p []byte) (int, error) {
	if c.isBroken() {
		return 0, errBroken
	}
	c.pending = append(c.pending, p...)
	var out []byte
	for {
		size := messageSize(c.pending, !c.started)
		if size == 0 || size > len(c.pending) {
			break
		}
		msg := c.pending[:size]
		if !c.started {
			c.started = true
			c.syncs++ // the server answers the startup with ReadyForQuery
		} else {
			var sql string
			switch msg[0] {
			case 'P': // Parse: statement name, query
				name, rest := cstring(msg[5:])
				query, _ := cstring(rest)
				c.stmts[name] = query
			case 'B': // Bind: portal, statement name
				_, rest := cstring(msg[5:])
				stmt, _ := cstring(rest)
				sql = c.stmts[stmt]
			case 'Q': // a simple query
				sql, _ = cstring(msg[5:])
			}
			if ft := c.f.take(sql); sql != "" && ft != nil {
				c.mu.Lock()
				c.fault = ft
				if ft.Committed {
					c.withhold = c.syncs + 1 // the round trip's sync point: this Query, or the Sync to come
				}
				c.mu.Unlock()
				if !ft.Committed {
					// The statement never reaches the server: what went
					// before it does, then the connection closes.
					if len(out) > 0 {
						_, _ = c.Conn.Write(out)
					}
					c.pending = nil
					c.fire()
					return len(p), nil
				}
			}
			if msg[0] == 'S' || msg[0] == 'Q' {
				c.syncs++
			}
		}
		out = append(out, msg...)
		c.pending = c.pending[size:]
	}
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (c *faultyConn) Read(p []byte) (int, error) {
	buf := make([]byte, 32<<10)
	for len(c.ready) == 0 {
		if c.isBroken() {
			return 0, errBroken
		}
		if c.readErr != nil {
			return 0, c.readErr
		}
		n, err := c.Conn.Read(buf)
		if c.isBroken() {
			return 0, errBroken
		}
		c.in = append(c.in, buf[:n]...)
		if c.parse() {
			return 0, errBroken
		}
		if err != nil {
			var ne net.Error
			if len(c.ready) == 0 || (errors.As(err, &ne) && ne.Timeout()) {
				return 0, err
			}
			c.readErr = err
		}
	}
	n := copy(p, c.ready)
	c.ready = c.ready[n:]
	return n, nil
}

// parse moves the server's whole messages from in to ready, withholding the
// answer of the round trip a fault picked, and breaks the connection once
// that answer is complete: it reports whether it did.
func (c *faultyConn) parse() bool {
	for {
		size := messageSize(c.in, false)
		if size == 0 || size > len(c.in) {
			return false
		}
		msg := c.in[:size]
		c.mu.Lock()
		withhold := c.withhold
		c.mu.Unlock()
		held := withhold > 0 && c.answered >= withhold-1
		if msg[0] == 'Z' {
			c.answered++
		}
		if !held {
			c.ready = append(c.ready, msg...)
		}
		c.in = c.in[size:]
		if held && msg[0] == 'Z' && c.answered == withhold {
			// The server has finished the round trip, its commit
			// included: the client never hears of it.
			c.ready = nil
			c.fire()
			return true
		}
	}
}

// messageSize is the size of the message at the start of b (its type byte,
// unless untyped, and its length), or 0 when b does not hold its length yet.
func messageSize(b []byte, untyped bool) int {
	if untyped {
		if len(b) < 4 {
			return 0
		}
		return int(binary.BigEndian.Uint32(b))
	}
	if len(b) < 5 {
		return 0
	}
	return 1 + int(binary.BigEndian.Uint32(b[1:]))
}

// cstring splits b at its first NUL.
func cstring(b []byte) (string, []byte) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return string(b), nil
	}
	return string(b[:i]), b[i+1:]
}
