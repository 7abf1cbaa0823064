package pgtest

import (
	"context"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/tcpproxy"
)

// Silent returns a pool of one connection, through a proxy, to a fresh
// database with migrations applied; the connection is open and warm when it
// returns. The proxy's Silence makes the server go silent to that connection,
// as behind a half-open one, while pgx's cancel request, on a connection of
// its own, gets through. When the test ends, the proxy's connections close,
// then the pool (which waits for a statement still running on a silenced
// connection: see tcpproxy.Proxy.Cut).
func Silent(tb testing.TB, migrations fs.FS) (*pgxpool.Pool, *tcpproxy.Proxy) {
	tb.Helper()
	url := NewDatabase(tb)
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	server := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
	proxy := tcpproxy.New(tb, server)
	url = strings.Replace(url, server, proxy.Addr(), 1)
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: url, Migrations: migrations, MaxConns: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	// Before the pool closes: pgx waits up to 15 s for the server's goodbye
	// on a connection it gave up on, which a silenced one never sends.
	tb.Cleanup(proxy.Cut)
	if _, err := pool.Exec(context.Background(), `SELECT 1`); err != nil { // the one connection, warm
		tb.Fatal(err)
	}
	return pool, proxy
}
