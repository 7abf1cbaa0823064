package postgres_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// silentProxy forwards TCP connections to the test's PostgreSQL server. Once
// silence is called, the connections open at that moment forward nothing
// more, in either direction, and close nothing: to their clients the server
// has gone silent, as behind a half-open connection. Connections opened later
// are forwarded (pgx's cancel request, on a connection of its own, gets
// through). Every connection closes when the test ends.
type silentProxy struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
	flags []*atomic.Bool // one per pair of connections
}

func newSilentProxy(t *testing.T, server string) *silentProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silentProxy{addr: ln.Addr().String()}
	t.Cleanup(func() {
		_ = ln.Close()
		p.closeAll()
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

// closeAll closes every connection, which ends whatever waits on them.
func (p *silentProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

func (p *silentProxy) silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.flags {
		f.Store(true)
	}
}

// silentPool is a pool of one connection, through a silentProxy, to a fresh
// database with a table t (id int primary key); the connection is open and
// warm when it returns.
func silentPool(t *testing.T) (*pgxpool.Pool, *silentProxy) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	server := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
	proxy := newSilentProxy(t, server)
	url = strings.Replace(url, server, proxy.addr, 1)
	migrations := fstest.MapFS{"0001_t.sql": {Data: []byte(`CREATE TABLE t (id int PRIMARY KEY)`)}}
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: url, Migrations: migrations, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, proxy
}

// A commit whose server has gone silent (a half-open connection) ends within
// Detached's timeout, with an error, and its connection leaves the pool
// within pgx's own bound: the slot is free for the next caller instead of
// held for as long as the kernel retransmits. Each way of committing: Tx, a
// BatchTx and ExecTx.
func TestACommitToASilentServerGivesItsSlotBack(t *testing.T) {
	postgres.SetFinishTimeout(t, 300*time.Millisecond)
	for name, commit := range map[string]func(context.Context, *pgxpool.Pool, *silentProxy) error{
		"Tx": func(ctx context.Context, pool *pgxpool.Pool, p *silentProxy) error {
			return postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1)`); err != nil {
					return err
				}
				p.silence()
				return nil
			})
		},
		"BatchTx": func(ctx context.Context, pool *pgxpool.Pool, p *silentProxy) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO t VALUES (1)`)
			tx, br := postgres.BeginBatch(ctx, pool, b)
			if err := br.Close(); err != nil {
				return err
			}
			p.silence()
			return tx.Commit(ctx, nil)
		},
		"ExecTx": func(ctx context.Context, pool *pgxpool.Pool, p *silentProxy) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO t VALUES (1)`)
			p.silence()
			return postgres.ExecTx(ctx, pool, b)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each waits out pgx's 15 s when its pool closes
			pool, proxy := silentPool(t)
			ctx := context.Background()
			if _, err := pool.Exec(ctx, `SELECT 1`); err != nil { // the one connection, warm
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- commit(ctx, pool, proxy) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("a commit nobody answered succeeded")
				}

			case <-time.After(10 * time.Second):
				proxy.closeAll() // or the pool's cleanup waits on the commit forever
				t.Fatal("the commit still waits on a silent server 10 s on; Detached's timeout is 300 ms")
			}
			if name != "Tx" {
				return // the slot's release is pgx's, the same for each
			}
			// pgx closes the connection the timeout ended, waiting at most
			// 15 s for the server's goodbye (pgconn's asyncClose), after
			// which the pool frees its slot.
			for deadline := time.Now().Add(20 * time.Second); pool.Stat().TotalConns() != 0; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections still in the pool 20 s after the commit returned, want 0", pool.Stat().TotalConns())
				}
			}
		})
	}
}

// Detached bounds a transaction's commit, not its work: a transaction whose
// work outlasts the bound (here 300 ms; a lock wait, a password hash inside
// it) still commits.
func TestASlowTransactionStillCommits(t *testing.T) {
	postgres.SetFinishTimeout(t, 300*time.Millisecond)
	pool := batchTxPool(t)
	ctx := context.Background()
	err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1, 1)`); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatalf("a transaction that took 500 ms: %v, want it committed", err)
	}
	if rows, _ := rowsOfT(t, pool); rows != 1 {
		t.Errorf("%d rows, want the 1 the transaction wrote", rows)
	}
}

// DeleteBatches stops after its maximum of batches: what is left goes at the
// next call.
func TestDeleteBatchesStopsAtItsMaximum(t *testing.T) {
	pool := batchTxPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO t SELECT i, 0 FROM generate_series(1, $1::int) i`, 2*postgres.DeleteBatch+1); err != nil {
		t.Fatal(err)
	}
	del := `DELETE FROM t WHERE ctid = ANY(ARRAY(SELECT ctid FROM t ORDER BY id LIMIT $1))`
	if n, err := postgres.DeleteBatches(ctx, pool, 1, del); err != nil || n != postgres.DeleteBatch {
		t.Fatalf("one batch: %d, %v; want %d", n, err, postgres.DeleteBatch)
	}
	if n, err := postgres.DeleteBatches(ctx, pool, 0, del); err != nil || n != postgres.DeleteBatch+1 {
		t.Fatalf("no maximum: %d, %v; want the %d left", n, err, postgres.DeleteBatch+1)
	}
}
