package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/broker/rabbitnode"
	"github.com/shopfaas/shop/internal/childproc"
	"github.com/shopfaas/shop/internal/proctest"
)

// serverDirEnv, set, makes TestServerHelperProcess start a server on the
// data directory there.
const serverDirEnv = "PGSERVER_HELPER_DIR"

// tempDir is a fresh directory the postgres user owns when the server runs
// as that user (t.TempDir's parent is 0700 and root's when the test runs
// as root), removed when the test ends.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Chown(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newConfig makes a data directory (initdb, through Run) in dir and
// returns the Config of a server on it, on a free port, its socket and log
// in dir.
func newConfig(t *testing.T, dir string) Config {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL server; -short was asked for")
	}
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := Run(context.Background(), bin, dir, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatal(err)
	}
	port, err := rabbitnode.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return Config{Bin: bin, Data: data, SocketDir: dir, Port: port, Log: filepath.Join(dir, "server.log"),
		Settings: []string{"fsync=off"}, StartTimeout: time.Minute}
}

// waitGroupGone reports whether no process of group pgid runs within d.
func waitGroupGone(pgid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); childproc.GroupAlive(pgid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// running lists which of pids still run (proctest.Running).
func running(pids []int) []int {
	var r []int
	for _, pid := range pids {
		if proctest.Running(pid) {
			r = append(r, pid)
		}
	}
	return r
}

// watcher records a server's postmaster and the processes it starts, seen
// as its children (proctest.ChildrenOf) while it runs: a view of them
// independent of Stop's.
type watcher struct {
	done chan struct{} // closed once the postmaster has exited
	pids []int         // the postmaster, then its children; set before done is closed
}

// watch returns a watcher and the Config.started hook that starts it.
func watch() (*watcher, func(*Server)) {
	w := &watcher{done: make(chan struct{})}
	return w, func(s *Server) {
		w.pids = []int{s.Pid()}
		go func() {
			defer close(w.done)
			for {
				for _, pid := range proctest.ChildrenOf(s.Pid()) {
					if !slices.Contains(w.pids, pid) {
						w.pids = append(w.pids, pid)
					}
				}
				select {
				case <-s.Exited():
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
	}
}

// leftBehind tells what still runs of the server w watched after Start
// failed: its postmaster, or any process seen started by it, which Start's
// error path had to stop (nil: nothing; -1: no server was started, or its
// postmaster has not exited within a minute).
func (w *watcher) leftBehind() []int {
	select {
	case <-w.done:
		return running(w.pids)
	case <-time.After(time.Minute):
		return []int{-1}
	}
}

// TestServerHelperProcess is not a test: run again by
// TestAServerDiesWithTheProcessThatStartedIt with serverDirEnv set, the
// test binary starts a server on the data directory prepared there, says
// "ready" and waits to be killed. Without serverDirEnv it returns. On
// failure it prints its error first: proctest.StartReady shows the first
// line.
func TestServerHelperProcess(t *testing.T) {
	dir := os.Getenv(serverDirEnv)
	if dir == "" {
		return
	}
	port, err := strconv.Atoi(os.Getenv(serverDirEnv + "_PORT"))
	if err == nil {
		_, err = Start(context.Background(), Config{Bin: os.Getenv(serverDirEnv + "_BIN"), Data: filepath.Join(dir, "data"),
			SocketDir: dir, Port: port, Log: filepath.Join(dir, "server.log"), Settings: []string{"fsync=off"}})
	}
	if err != nil {
		fmt.Println(strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
	fmt.Println("ready")
	time.Sleep(10 * time.Minute)
}

// The postmaster dies with the process that started it, even killed
// (SIGKILL: no cleanup runs), and every process it started follows: a
// killed test or chaos run leaves no PostgreSQL behind.
func TestAServerDiesWithTheProcessThatStartedIt(t *testing.T) {
	dir := tempDir(t)
	c := newConfig(t, dir)
	parent := exec.Command(os.Args[0], "-test.run=^TestServerHelperProcess$")
	parent.Env = append(os.Environ(), serverDirEnv+"="+dir, serverDirEnv+"_PORT="+strconv.Itoa(c.Port), serverDirEnv+"_BIN="+c.Bin)
	exited := proctest.StartReady(t, parent)
	b, err := os.ReadFile(filepath.Join(c.Data, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || !proctest.Running(postmaster) {
		t.Fatalf("postmaster.pid says %q (%v), not a running process", first, err)
	}
	// A session, so that a backend runs too.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:"+strconv.Itoa(c.Port)+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	// Handles (pidfds) taken while they run: should any outlive the
	// helper, the cleanup kills it through its handle, which never
	// reaches a process that reused the pid of one shown gone.
	pids := append([]int{postmaster}, proctest.ChildrenOf(postmaster)...)
	if !slices.Contains(pids, backend) {
		t.Fatalf("the session's backend %d is not among the postmaster's children %v", backend, pids[1:])
	}
	for _, pid := range pids {
		p, err := os.FindProcess(pid)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Kill(); _ = p.Release() })
	}
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	for deadline := time.Now().Add(10 * time.Second); len(running(pids)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the process that started the server was killed, %v of its postmaster %d and children %v still run",
				running(pids), postmaster, pids[1:])
		}
	}
}

// A server that cannot start (its port taken) or is never ready (here no
// time to be) is not left behind: Start returns an error, and neither the
// postmaster nor any process seen started by it runs.
func TestAServerThatFailsToStartLeavesNothingBehind(t *testing.T) {
	c := newConfig(t, tempDir(t))
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(c.Port))
	if err != nil {
		t.Fatal(err)
	}
	held := c
	w, started := watch()
	held.started = started
	if s, err := Start(context.Background(), held); err == nil || !strings.Contains(err.Error(), "exited at start") {
		t.Errorf("Start on a port held by another listener: %v (server %v), want an error saying it exited", err, s)
	}
	_ = ln.Close()
	if left := w.leftBehind(); left != nil {
		t.Errorf("after Start on a taken port failed, these still run: %v (-1: nothing was started)", left)
	}

	hurried := c
	hurried.StartTimeout = time.Nanosecond
	w, hurried.started = watch()
	if s, err := Start(context.Background(), hurried); err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not ready within") {
		t.Errorf("Start given 1 ns: %v (server %v), want not ready within 1ns", err, s)
	}
	if left := w.leftBehind(); left != nil {
		t.Errorf("after Start that was not ready in time, these still run: %v (-1: nothing was started)", left)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	abandoned := c
	w, started = watch()
	abandoned.started = func(s *Server) { started(s); cancel() }
	if s, err := Start(ctx, abandoned); err == nil || !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "not ready within") {
		t.Errorf("Start with a cancelled ctx: %v (server %v), want the cancellation as the cause, not a time", err, s)
	}
	if left := w.leftBehind(); left != nil {
		t.Errorf("after Start with a cancelled ctx, these still run: %v (-1: nothing was started)", left)
	}
}

// Stop returns only once neither the postmaster nor any process it started
// runs: after a fast and an immediate shutdown with a session open, and after the
// postmaster was killed behind the server's back (its backend left
// running). Each stop's wait is bounded by one timeout.
func TestStopWaitsUntilEveryProcessOfTheServerIsGone(t *testing.T) {
	c := newConfig(t, tempDir(t))
	ctx := context.Background()
	for _, stop := range []struct {
		name   string
		mode   syscall.Signal
		killed bool
	}{{"fast", syscall.SIGINT, false}, {"immediate", syscall.SIGQUIT, false}, {"killed", syscall.SIGINT, true}} {
		s, err := Start(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:"+strconv.Itoa(c.Port)+"/postgres?sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		var backend int
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
			t.Fatal(err)
		}
		pids := append([]int{s.Pid()}, proctest.ChildrenOf(s.Pid())...)
		if !slices.Contains(pids, backend) {
			t.Fatalf("the session's backend %d is not among the postmaster's children %v", backend, pids[1:])
		}
		if stop.killed {
			if err := syscall.Kill(s.Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-s.Exited()
		}
		died, err := s.Stop(stop.mode, time.Minute)
		left := running(pids)
		_ = conn.Close(ctx)
		if err != nil || died != stop.killed {
			t.Fatalf("Stop (%s): died %v, %v; want died %v and no error", stop.name, died, err, stop.killed)
		}
		if left != nil {
			t.Fatalf("Stop (%s) returned while %v of the postmaster %d and its children %v still ran", stop.name, left, pids[0], pids[1:])
		}
	}
}

// A server's Stop ends that server's processes only: another server
// started while it ran, by another process (a parallel test's, the chaos
// run's), is a process named postgres, of the same user, started in its
// window, whose parent is no postgres, as its own children left by a
// killed postmaster are. Until 2026-12-06 Stop took that postmaster for
// one of them and shut it down (SIGQUIT, then SIGKILL): the chaos run of a
// clean-clone CI lost its PostgreSQL ("exited on its own") while another
// checkout's tests stopped their private clusters. Both ways a Stop scans
// for leftovers after its postmaster is gone are tried: a fast shutdown,
// and a postmaster killed outright.
func TestStopLeavesAnotherServerStartedMeanwhileServing(t *testing.T) {
	ctx := context.Background()
	for _, killed := range []bool{false, true} {
		first, err := Start(ctx, newConfig(t, tempDir(t)))
		if err != nil {
			t.Fatal(err)
		}
		c := newConfig(t, tempDir(t))
		other, err := Start(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = other.Stop(syscall.SIGQUIT, time.Minute) })
		if killed {
			if err := syscall.Kill(first.Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-first.Exited()
		}
		if _, err := first.Stop(syscall.SIGINT, time.Minute); err != nil {
			t.Fatalf("Stop (killed %v): %v", killed, err)
		}
		// A shutdown ordered by a stray SIGQUIT takes a moment.
		time.Sleep(500 * time.Millisecond)
		select {
		case <-other.Exited():
			t.Fatalf("the other server (postmaster %d) exited (%v) when the first one (killed %v) was stopped", other.Pid(), other.Err(), killed)
		default:
		}
		conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:"+strconv.Itoa(c.Port)+"/postgres?sslmode=disable")
		if err != nil {
			t.Fatalf("the other server refuses a login after the first one (killed %v) was stopped: %v", killed, err)
		}
		_ = conn.Close(ctx)
		if _, err := other.Stop(syscall.SIGINT, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

// The readiness login takes the socket directory as it is: one whose name
// holds a space (and a quote) serves, where a connection string pasted
// from it could never be parsed and Start waited out its timeout.
func TestAServerStartsInASocketDirectoryWithASpace(t *testing.T) {
	dir := filepath.Join(tempDir(t), `a "socket" dir`)
	serverDir(t, dir)
	c := newConfig(t, dir)
	serves(t, c)
}

// serves starts a server with c and stops it, failing t unless both work.
func serves(t *testing.T, c Config) {
	t.Helper()
	s, err := Start(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop(syscall.SIGINT, time.Minute); err != nil {
		t.Error(err)
	}
}

// serverDir makes dir, given to the user the server runs as.
func serverDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Chown(dir); err != nil {
		t.Fatal(err)
	}
}

// A data directory named relative to the working directory serves: the
// postmaster runs in the socket directory, where that name would be
// another's (or none) were it passed on as it is.
func TestAServerStartsOnARelativeDataDirectory(t *testing.T) {
	dir := filepath.Join(tempDir(t), "socket")
	serverDir(t, dir)
	c := newConfig(t, filepath.Dir(dir))
	c.SocketDir = dir
	t.Chdir(filepath.Dir(c.Data))
	c.Data = filepath.Base(c.Data)
	serves(t, c)
}

// A refusal that cannot clear as the server starts (pg_hba.conf rejects
// the superuser's login) fails Start at once, the server stopped, rather
// than being retried until the start timeout.
func TestARefusedLoginFailsStartAtOnce(t *testing.T) {
	c := newConfig(t, tempDir(t))
	if err := os.WriteFile(filepath.Join(c.Data, "pg_hba.conf"), []byte("local all all reject\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Chown(filepath.Join(c.Data, "pg_hba.conf")); err != nil {
		t.Fatal(err)
	}
	c.StartTimeout = time.Minute
	w, started := watch()
	c.started = started
	began := time.Now()
	s, err := Start(context.Background(), c)
	if took := time.Since(began); err == nil || took > c.StartTimeout/2 || !strings.Contains(err.Error(), "pg_hba.conf") {
		t.Errorf("Start with every login rejected: %v (server %v) after %v; want the refusal long before the %v timeout", err, s, took, c.StartTimeout)
	}
	if left := w.leftBehind(); left != nil {
		t.Errorf("after Start failed on a refused login, these still run: %v (-1: nothing was started)", left)
	}
}

// The log is opened as root in a directory the server's user owns: a
// symbolic link put in its place, or a FIFO, makes Start fail, and what it
// points at is left untouched (nothing written, nothing started).
func TestStartRefusesALogThatIsNotARegularFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server if the log is taken; -short was asked for")
	}
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t)
	target := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(target, []byte("keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{Bin: bin, Data: dir, SocketDir: dir, Port: 1, Log: filepath.Join(dir, "server.log"), StartTimeout: time.Minute}
	if err := os.Symlink(target, c.Log); err != nil {
		t.Fatal(err)
	}
	started := false
	c.started = func(*Server) { started = true }
	_, err = Start(context.Background(), c)
	b, _ := os.ReadFile(target)
	if err == nil || started || string(b) != "keep\n" {
		t.Errorf("Start with its log a symbolic link: %v, server started %v, the link's target holds %q; want an error, nothing started, \"keep\\n\"", err, started, b)
	}

	if err := os.Remove(c.Log); err != nil {
		t.Fatal(err)
	}
	started = false
	if err := syscall.Mkfifo(c.Log, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader, so that an open for writing would succeed.
	fifo, err := os.OpenFile(c.Log, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	_, err = Start(context.Background(), c)
	n, _ := fifo.Read(make([]byte, 512))
	if err == nil || started || n != 0 {
		t.Errorf("Start with its log a FIFO: %v, server started %v, %d bytes written to the FIFO; want an error, nothing started or written", err, started, n)
	}
}

// Run ends with its ctx: the program and what it forked (initdb's
// bootstrap postgres, here a shell's sleep) are killed, and Run returns
// ctx's error at once, not when the program would have finished.
func TestRunEndsWithItsContext(t *testing.T) {
	bin := tempDir(t)
	script := "#!/bin/sh\necho $$ > " + filepath.Join(bin, "pid") + "\nsleep 60\necho done\n"
	if err := os.WriteFile(filepath.Join(bin, "slow"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- Run(ctx, bin, bin, "slow") }()
	var pid int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(bin, "pid")); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the program Run runs has not written its pid within 30 s")
		}
	}
	for deadline := time.Now().Add(30 * time.Second); len(proctest.ChildrenOf(pid)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the program Run runs has not forked its sleep within 30 s")
		}
	}
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run cancelled: %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run has not returned 20 s after its ctx was cancelled (the program sleeps 60 s)")
	}
	if !waitGroupGone(pid, 10*time.Second) {
		t.Errorf("10 s after Run was cancelled, processes of the program's group (%d) still run", pid)
	}
}

// A second server started on the data directory a live one holds exits at
// once (its lock file, postmaster.pid), and Start's error path stops only
// what that second postmaster started: the first one, its session and its
// other processes run on, and it still takes new sessions.
func TestASecondServerOnTheSameDataDirectoryLeavesTheFirstServing(t *testing.T) {
	dir := tempDir(t)
	c := newConfig(t, dir)
	ctx := context.Background()
	first, err := Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := first.Stop(syscall.SIGQUIT, time.Minute); err != nil {
			t.Error(err)
		}
	}()
	url := "postgres://postgres@127.0.0.1:" + strconv.Itoa(c.Port) + "/postgres?sslmode=disable"
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	// Those two, not every child: the backend of Start's readiness login
	// may still be ending.
	pids := []int{first.Pid(), backend}

	second := c
	if second.Port, err = rabbitnode.FreePort(); err != nil {
		t.Fatal(err)
	}
	second.Log = filepath.Join(dir, "second.log")
	if s, err := Start(ctx, second); err == nil || !strings.Contains(err.Error(), "exited at start") {
		t.Fatalf("a second Start on a data directory a live server holds: %v (server %v), want an error saying it exited", err, s)
	}
	select {
	case <-first.Exited():
		t.Fatalf("the first server exited (%v) when a second one failed to start on its data directory", first.Err())
	default:
	}
	if r := running(pids); len(r) != len(pids) {
		t.Errorf("of the first server's postmaster and its session's backend %v, only %v still run after the second Start failed", pids, r)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("the first server's session after the second Start failed: %v", err)
	}
	again, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("a new session on the first server after the second Start failed: %v", err)
	}
	_ = again.Close(ctx)
}
