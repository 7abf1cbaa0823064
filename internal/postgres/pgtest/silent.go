package pgtest

import (
	"context"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
)

// SilentProxy forwards TCP connections to the test's PostgreSQL server. Once
// Silence is called, the connections open at that moment forward nothing
// more, in either direction, and close nothing: to their clients the server
// has gone silent, as behind a half-open connection. Connections opened later
// are forwarded (pgx's cancel request, on a connection of its own, gets
// through). Every connection closes when the test ends.
type SilentProxy struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
	flags []*atomic.Bool // one per pair of connections
}

// Silent returns a pool of one connection, through a SilentProxy, to a fresh
// database with migrations applied; the connection is open and warm when it
// returns. When the test ends, the proxy's connections close, then the pool
// (which waits for a statement still running on a silenced connection: see
// CloseAll).
func Silent(tb testing.TB, migrations fs.FS) (*pgxpool.Pool, *SilentProxy) {
	tb.Helper()
	url := NewDatabase(tb)
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	server := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
	proxy := newSilentProxy(tb, server)
	url = strings.Replace(url, server, proxy.addr, 1)
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: url, Migrations: migrations, MaxConns: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	// Before the pool closes: pgx waits up to 15 s for the server's goodbye
	// on a connection it gave up on, which a silenced one never sends.
	tb.Cleanup(proxy.CloseAll)
	if _, err := pool.Exec(context.Background(), `SELECT 1`); err != nil { // the one connection, warm
		tb.Fatal(err)
	}
	return pool, proxy
}

func newSilentProxy(tb testing.TB, server string) *SilentProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &SilentProxy{addr: ln.Addr().String()}
	tb.Cleanup(func() {
		_ = ln.Close()
		p.CloseAll()
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			upstream, err := net.Dial("tcp", server)
			if err != nil {
				_ = client.Close()
				continue
			}
			silent := new(atomic.Bool)
			p.mu.Lock()
			p.conns = append(p.conns, client, upstream)
			p.flags = append(p.flags, silent)
			p.mu.Unlock()
			go pipe(upstream, client, silent)
			go pipe(client, upstream, silent)
		}
	}()
	return p
}

// pipe copies from src to dst until silent, then reads and drops.
func pipe(dst, src net.Conn, silent *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !silent.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !silent.Load() {
				_ = dst.Close()
			}
			return
		}
	}
}

// Silence silences every connection open now.
func (p *SilentProxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.flags {
		f.Store(true)
	}
}

// CloseAll closes every connection, which ends whatever waits on them: a
// test that gives up on a statement sent to a silenced connection calls it,
// or the pool's cleanup waits for that statement forever.
func (p *SilentProxy) CloseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}
