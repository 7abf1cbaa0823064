package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shopfaas/shop/internal/postgres/pgserver"
)

// cluster is a private PostgreSQL cluster (internal/postgres/pgserver):
// initdb into a directory of its own, served on its own port on 127.0.0.1
// with trust authentication, so restarting it disturbs nobody. As root, the
// server runs as the postgres user (initdb refuses root).
//
// Its postmaster is this process's child, so on Linux it dies with the
// chaos run even when the run is killed (SIGKILL: no Close runs), and its
// backends follow it. Until 2026-12-06 it was started with `pg_ctl start`,
// which detaches the postmaster (setsid, its parent pg_ctl gone): a killed
// run left a PostgreSQL serving its temporary directory on a random port.
type cluster struct {
	bin, dir string
	port     int
	logf     func(format string, args ...any) // the chaos run's log

	mu     sync.Mutex
	server *pgserver.Server // nil when stopped
}

// startCluster creates the cluster in dir and starts its server on port;
// logf receives what the run's log should tell of it (a server found dead).
func startCluster(ctx context.Context, dir string, port int, logf func(format string, args ...any)) (*cluster, error) {
	bin, err := pgserver.BinDir()
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	c := &cluster{bin: bin, dir: dir, port: port, logf: logf}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := pgserver.Chown(dir); err != nil {
		return nil, err
	}
	if err := pgserver.Run(ctx, bin, dir, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, err
	}
	return c, c.start(ctx)
}

// URL is the connection URL of database name.
func (c *cluster) URL(name string) string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(c.port) + "/" + name + "?sslmode=disable"
}

// start runs the postmaster and waits until it accepts connections (as
// `pg_ctl start -w -t 120` did).
func (c *cluster) start(ctx context.Context) error {
	server, err := pgserver.Start(ctx, pgserver.Config{Bin: c.bin, Data: filepath.Join(c.dir, "data"), SocketDir: c.dir,
		Port: c.port, Log: filepath.Join(c.dir, "server.log"), Settings: []string{"max_connections=200", "fsync=on"}})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.server = server
	c.mu.Unlock()
	return nil
}

// stop asks the postmaster for a shutdown in mode (SIGINT: fast, SIGQUIT:
// immediate) and waits until its processes have exited. A postmaster that
// had already exited on its own (killed, crashed) is stopped as well: stop
// logs it, waits for the backends it left (reviving says so), and returns
// nil, so that a restart starts it again, as `pg_ctl restart` did.
func (c *cluster) stop(mode syscall.Signal) (reviving bool, err error) {
	c.mu.Lock()
	server := c.server
	c.server = nil
	c.mu.Unlock()
	if server == nil {
		return false, nil
	}
	reviving, err = server.Stop(mode, 120*time.Second)
	if reviving {
		c.logf("PostgreSQL had exited on its own (%v); see %s", server.Err(), filepath.Join(c.dir, "server.log"))
	}
	return reviving, err
}

// Restart is what `pg_ctl restart -m fast` does, a fast shutdown (SIGINT to
// the postmaster) and a start: sessions are cut, transactions in flight roll
// back, and the server writes a checkpoint before it stops. With crash, it
// is `-m immediate` (SIGQUIT), which stops every process at once as a
// crash of its processes would (not of the host): no checkpoint, the WAL
// still in PostgreSQL's buffers is lost (asynchronous commits not yet
// written: the relay's marks, the simulator's ledger), and the start
// replays the WAL. A server that had died on its own is logged and started
// again, as pg_ctl restart started it; revived then says so (no signal was
// sent).
func (c *cluster) Restart(ctx context.Context, crash bool) (revived bool, err error) {
	mode := syscall.SIGINT
	if crash {
		mode = syscall.SIGQUIT
	}
	revived, err = c.stop(mode)
	if err != nil {
		return revived, err
	}
	return revived, c.start(ctx)
}

// Close stops the server (fast shutdown) and removes its directory.
func (c *cluster) Close() error {
	_, err := c.stop(syscall.SIGINT)
	_ = os.RemoveAll(c.dir)
	return err
}
