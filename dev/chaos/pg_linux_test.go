package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/broker/rabbitnode"
	"github.com/shopfaas/shop/internal/proctest"
)

// newTestCluster starts a private cluster in a fresh directory; it is
// stopped when the test ends.
func newTestCluster(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster; -short was asked for")
	}
	port, err := rabbitnode.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tempDir(t), "pg")
	c, err := startCluster(context.Background(), dir, port, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// tempDir is a directory the postgres user can enter (t.TempDir's parent
// is 0700 and root's when the test runs as root).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "chaos-pg-test-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// recoveryLine is what PostgreSQL (15 and later) logs when it starts on a
// cluster that was not shut down cleanly, before it replays the WAL.
const recoveryLine = "database system was not properly shut down; automatic recovery in progress"

// A cluster serves again after each kind of restart the chaos run makes
// (fast, and immediate as a crash), and keeps what was committed. The crash
// must be one: the server's log shows crash recovery after it and not after
// the fast restart, which would pass the rest of the test just as well.
func TestAClusterServesAfterEachRestart(t *testing.T) {
	c := newTestCluster(t)
	ctx := context.Background()
	run := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	run("CREATE TABLE kept (n int)")
	run("INSERT INTO kept VALUES (1)")
	logPath := filepath.Join(c.dir, "server.log")
	for _, crash := range []bool{false, true} {
		before, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if revived, err := c.Restart(ctx, crash); err != nil || revived {
			t.Fatalf("restart (crash %v): revived %v, %v; want a running server stopped and started", crash, revived, err)
		}
		run("INSERT INTO kept VALUES (2)")
		after, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		// The server only appends: what this restart logged follows what
		// was there before it.
		logged := string(after[len(before):])
		if recovered := strings.Contains(logged, recoveryLine); recovered != crash {
			t.Errorf("restart (crash %v): crash recovery in the server's log: %v, want %v; it logged:\n%s", crash, recovered, crash, logged)
		}
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows after the restarts: %d (%v), want 3", n, err)
	}
}

// A restart brings back a server that died on its own (here SIGKILLed
// behind the cluster's back), as `pg_ctl restart` did, and the run's log
// says so. Until 2026-12-06 the signal to the dead postmaster failed ("os:
// process already finished") and Restart returned that error without
// starting it: every later restart of the run failed the same way.
func TestARestartRevivesAServerThatDiedOnItsOwn(t *testing.T) {
	c := newTestCluster(t)
	var logged []string
	c.logf = func(format string, args ...any) {
		logged = append(logged, fmt.Sprintf(format, args...))
		t.Logf(format, args...)
	}
	ctx := context.Background()
	for _, crash := range []bool{false, true} {
		// A session open when the postmaster dies: its backend must be
		// gone before the new postmaster starts, which refuses to while a
		// backend of the old one holds its shared memory.
		held, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var backend int
		if err := held.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		server := c.server
		c.mu.Unlock()
		if err := syscall.Kill(server.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case <-server.Exited():
		case <-time.After(10 * time.Second):
			t.Fatal("the SIGKILLed postmaster has not exited after 10 s")
		}
		logged = nil
		revived, err := c.Restart(ctx, crash)
		if err != nil || !revived {
			t.Fatalf("restart (crash %v) of a dead server: revived %v, %v; want it revived", crash, revived, err)
		}
		_ = held.Close(ctx)
		// Its own session's leader (PostgreSQL's children call setsid),
		// so not in the postmaster's process group.
		if proctest.Running(backend) {
			t.Errorf("restart (crash %v) of a dead server: the old postmaster's backend %d still runs", crash, backend)
		}
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Fatalf("after the restart (crash %v) of a dead server: %v", crash, err)
		}
		var one int
		err = conn.QueryRow(ctx, "SELECT 1").Scan(&one)
		_ = conn.Close(ctx)
		if err != nil || one != 1 {
			t.Fatalf("after the restart (crash %v) of a dead server: SELECT 1 = %d (%v)", crash, one, err)
		}
		if len(logged) != 1 || !strings.Contains(logged[0], "exited on its own") {
			t.Errorf("restart (crash %v) of a dead server logged %q, want one line saying it had exited on its own", crash, logged)
		}
	}
}
