//go:build unix

// Package pgserver runs a private PostgreSQL server for tests and the chaos
// suite: a data directory of its own (initdb), its postmaster on its own
// port on 127.0.0.1 with its Unix socket in a directory of its own, so that
// creating roles, restarting or crashing it disturbs nobody else on the
// machine. As root, initdb and the server run as the postgres user (initdb
// refuses root).
//
// The postmaster runs in the foreground as this process's child, started
// through childproc, so on Linux it dies with the process that started it
// even when that one is killed (SIGKILL: no cleanup runs), and its backends
// follow it (each watches the postmaster). Those are not in its process
// group (each of PostgreSQL's children leads a session of its own): Stop
// finds them from what /proc/<pid>/stat tells anyone (no CAP_SYS_PTRACE
// needed where the server runs as another user): its children while it
// runs, and once it has exited, the processes named postgres that it left
// (Server.children). `pg_ctl start` would detach it
// (setsid, its parent pg_ctl gone): a killed test or chaos run left a
// PostgreSQL serving a temporary directory on a random port.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopfaas/shop/internal/childproc"
)

// BinDir is the directory of PostgreSQL's server binaries: that of postgres
// on PATH, else the newest /usr/lib/postgresql/*/bin (Debian keeps them off
// PATH).
func BinDir() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	if len(dirs) == 0 {
		return "", errors.New("PostgreSQL's server binaries not found (Debian: apt-get install postgresql)")
	}
	return dirs[len(dirs)-1], nil
}

// asPostgres reports whether the server's programs run as the postgres
// user: as root, which initdb and postgres refuse to run as.
func asPostgres() bool { return os.Geteuid() == 0 }

// Chown gives path and everything under it to the postgres user where the
// server runs as that user (as root), so that the server may write there;
// elsewhere it does nothing.
func Chown(path string) error {
	if !asPostgres() {
		return nil
	}
	if out, err := exec.Command("chown", "-R", "postgres:postgres", path).CombinedOutput(); err != nil {
		return fmt.Errorf("chown %s: %v: %s", path, err, out)
	}
	return nil
}

// Run runs prog, one of PostgreSQL's programs in bin (initdb), in dir, as
// the postgres user where the server runs as that user (through
// Credential, as Start runs the postmaster: one way of switching user), in
// a process group of its own (a Ctrl-C at the terminal must not reach it
// before the caller decides). It dies with this process (childproc), and
// when ctx is done it is killed with its group (initdb's own children, the
// bootstrap postgres) and Run returns ctx's error at once. The error
// carries prog's output.
func Run(ctx context.Context, bin, dir, prog string, args ...string) error {
	cmd := exec.Command(filepath.Join(bin, prog), args...)
	cmd.Dir = dir
	var out bytes.Buffer // one writer for both: written by one goroutine
	cmd.Stdout, cmd.Stderr = &out, &out
	if asPostgres() {
		cred, err := postgresUser()
		if err != nil {
			return err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	// Whatever of its group outlives prog (killed, or crashed) goes with
	// it, signalled before prog is reaped (StartGroup): its children hold
	// the output pipe Wait reads to its end.
	waited, err := childproc.StartGroup(cmd, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	if err != nil {
		return fmt.Errorf("%s: %w", prog, err)
	}
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-waited
		return fmt.Errorf("%s %v: %w\n%s", prog, args, ctx.Err(), out.Bytes())
	}
	if err != nil {
		return fmt.Errorf("%s %v: %w\n%s", prog, args, err, out.Bytes())
	}
	return nil
}

// Config says which server to start. Every field but Settings and
// StartTimeout is required.
type Config struct {
	// Bin holds PostgreSQL's server binaries (BinDir).
	Bin string
	// Data is the data directory, made by initdb (Run) and owned by the
	// user the server runs as (Chown).
	Data string
	// SocketDir holds the server's Unix socket (-k), where the superuser
	// postgres logs in to see the server ready; the server runs in it.
	SocketDir string
	// Port is the server's port, on 127.0.0.1 and for the socket's name.
	Port int
	// Log is the file the server's output is appended to.
	Log string
	// Settings are more -c name=value settings (fsync=off, max_connections=200).
	Settings []string
	// StartTimeout bounds the wait for the server to accept connections
	// (default 120 s, as `pg_ctl start -w -t 120`).
	StartTimeout time.Duration

	// started, if not nil, is told of the server once its postmaster
	// runs (tests: what Start stopped must be gone).
	started func(*Server)
}

// Server is one run of a postmaster.
type Server struct {
	proc   *os.Process
	exited chan struct{} // closed once proc has exited
	err    error         // its Wait's result, set before exited is closed
	// start is when the postmaster started, and end a time no earlier
	// than its exit (taken as it exits, before it is reaped; set before
	// exited is closed), in the clock ticks since boot of
	// childproc.Stat.Start. uid is its user's id. known says all three
	// could be read.
	start, end uint64
	uid        int
	known      bool
}

// Start starts the postmaster in the foreground (in a process group of its
// own, whose id is its pid) and returns once the superuser postgres can log
// in on its Unix socket. A server that exits, refuses that login or is not
// ready in time is not left behind: Start stops it and returns an error
// naming the log. Only what can clear as the server starts is waited out
// (no socket yet, connection refused, "the database system is starting
// up"); any other refusal (a login pg_hba.conf rejects) fails at once.
//
// The log is opened as whoever runs Start (root) in a directory the
// server's user may write to: a symbolic link or anything but a regular
// file in its place is refused, never followed or written to.
func Start(ctx context.Context, c Config) (*Server, error) {
	logFile, err := openLog(c.Log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the server holds its own copy
	// The readiness login's settings, as fields: a socket directory is
	// any path (spaces, quotes), which a connection string would have to
	// quote.
	login, err := pgx.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("postgres readiness login: %w", err)
	}
	login.Host, login.Port, login.User, login.Database = c.SocketDir, uint16(c.Port), "postgres", "postgres"
	login.TLSConfig, login.Fallbacks = nil, nil
	// -k takes a list (unix_socket_directories): a name in double quotes,
	// a quote in it doubled, may hold spaces and commas.
	socketDirs := `"` + strings.ReplaceAll(c.SocketDir, `"`, `""`) + `"`
	// -D absolute: the server runs in the socket directory, where a
	// relative data directory would name another.
	data, err := filepath.Abs(c.Data)
	if err != nil {
		return nil, err
	}
	args := []string{"-D", data, "-p", strconv.Itoa(c.Port), "-k", socketDirs, "-c", "listen_addresses=127.0.0.1"}
	for _, s := range c.Settings {
		args = append(args, "-c", s)
	}
	cmd := exec.Command(filepath.Join(c.Bin, "postgres"), args...)
	cmd.Dir = c.SocketDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C at the terminal must not reach the
	// server before its caller stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if asPostgres() {
		// The postmaster itself runs as postgres, not a child of runuser
		// (which forks and waits): the parent-death signal childproc sets
		// must reach the server. Go sets it after changing the user, which
		// would clear it.
		cred, err := postgresUser()
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr.Credential = cred
	}
	s := &Server{exited: make(chan struct{})}
	// Its start time, read while it is a zombie not yet reaped (its pid
	// not reused), and the time it is known to have exited by: whatever
	// it started, it started in between.
	atExit := func() {
		st, ok := childproc.ReadStat(cmd.Process.Pid)
		end, ok2 := childproc.BootTicks()
		uid, ok3 := childproc.UID(cmd.Process.Pid)
		s.start, s.end, s.uid, s.known = st.Start, end, uid, ok && ok2 && ok3 && st.Start <= end
	}
	waited, err := childproc.StartGroup(cmd, atExit)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s.proc = cmd.Process
	go func() { s.err = <-waited; close(s.exited) }()
	if c.started != nil {
		c.started(s)
	}

	timeout := c.StartTimeout
	if timeout == 0 {
		timeout = 120 * time.Second
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		conn, err := pgx.ConnectConfig(waitCtx, login)
		if err == nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return s, nil
		}
		select {
		case <-s.exited:
			_, _ = s.Stop(syscall.SIGQUIT, 30*time.Second) // its backends, if any
			return nil, fmt.Errorf("postgres exited at start (%v; %s): %w", s.err, c.Log, err)
		default:
		}
		switch {
		case ctx.Err() != nil:
			_, _ = s.Stop(syscall.SIGQUIT, 30*time.Second)
			return nil, fmt.Errorf("postgres start abandoned (%s; last login: %v): %w", c.Log, err, ctx.Err())
		case waitCtx.Err() != nil:
			_, _ = s.Stop(syscall.SIGQUIT, 30*time.Second)
			return nil, fmt.Errorf("postgres not ready within %v (%s; last login: %v): %w", timeout, c.Log, err, waitCtx.Err())
		case !startingUp(err):
			_, _ = s.Stop(syscall.SIGQUIT, 30*time.Second)
			return nil, fmt.Errorf("postgres refused the superuser's login on its socket (%s): %w", c.Log, err)
		}
		select {
		case <-s.exited:
		case <-waitCtx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// openLog opens the server's log to append to, creating it: not through a
// symbolic link (O_NOFOLLOW: the directory is the server's user's, who
// could point it at any file root may write), and only a regular file
// (O_NONBLOCK: a FIFO put there must not block the open).
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return nil, fmt.Errorf("postgres's log: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("postgres's log %s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// startingUp reports whether err, a failed login, may clear as the server
// starts: its socket not there yet or not listening (or its backlog full,
// EAGAIN), or the server answering that it is starting up (57P03,
// cannot_connect_now) or has no connection free yet (53300,
// too_many_connections: the sessions of a restarted server's clients).
func startingUp(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EAGAIN)
}

// Pid is the postmaster's process id, which is also its process group's.
func (s *Server) Pid() int { return s.proc.Pid }

// Exited is closed once the postmaster has exited, on its own or stopped.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Err is how the postmaster exited (its Wait's result), once it has.
func (s *Server) Err() error {
	select {
	case <-s.exited:
		return s.err
	default:
		return nil
	}
}

// Stop asks the postmaster for a shutdown in mode (SIGINT: fast, SIGQUIT:
// immediate) and waits, timeout in all, until it and every process it
// started have exited; what still runs then is killed and Stop says so. A
// postmaster that had exited on its own (killed, crashed) gets no signal:
// died says so (Err tells how it ended), and Stop asks the processes it
// left (backends) to quit at once, as an immediate shutdown asks them, and
// waits for them (a postmaster killed outright leaves them running,
// attached to its shared memory, and a new one started meanwhile on the
// same data directory refuses to: "pre-existing shared memory block is
// still in use").
func (s *Server) Stop(mode syscall.Signal, timeout time.Duration) (died bool, err error) {
	deadline := time.Now().Add(timeout)
	select {
	case <-s.exited:
		died = true
	default:
		if err := s.proc.Signal(mode); err != nil {
			if !errors.Is(err, os.ErrProcessDone) {
				return false, fmt.Errorf("stop postgres: %w", err)
			}
			// Reaped between the look at exited and the signal: exited is
			// about to be closed, and err set.
			<-s.exited
			died = true
		}
	}
	if !died {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		select {
		case <-s.exited:
		case <-timer.C:
			_ = s.proc.Kill()
			<-s.exited
			err = fmt.Errorf("postgres did not stop within %v; killed", timeout)
		}
	}
	// After a shutdown none is left, unless the postmaster was killed.
	left := s.children()
	for _, p := range left {
		_ = p.Signal(syscall.SIGQUIT)
	}
	for ; len(left) > 0; left = s.children() {
		if time.Now().After(deadline) {
			for _, p := range left {
				_ = p.Kill()
			}
			release(left)
			return died, errors.Join(err, fmt.Errorf("%d processes of postgres still ran %v after Stop was called; killed", len(left), timeout))
		}
		release(left)
		time.Sleep(20 * time.Millisecond)
	}
	return died, err
}

// children lists the processes the postmaster started (its backends and
// auxiliary processes) that still run, its own or, once it has exited,
// left by it. Each makes itself the leader of a session of its own
// (setsid), so no process group holds them. They are told from
// /proc/<pid>/stat, which anyone may read (a process's program and working
// directory need CAP_SYS_PTRACE when it runs as another user, as the
// server does as root): see ours. Each comes as a handle (a pidfd on
// Linux), taken before the process is checked again: a signal through it
// reaches that process, never one that reused its pid. Where there is no
// /proc, none is found.
func (s *Server) children() []*os.Process {
	pids, _ := childproc.Processes()
	var found []*os.Process
	for _, pid := range pids {
		if pid == s.proc.Pid || !s.ours(pid) {
			continue
		}
		p, err := os.FindProcess(pid)
		if err != nil {
			continue
		}
		if !s.ours(pid) { // gone, its pid reused, before the handle
			_ = p.Release()
			continue
		}
		found = append(found, p)
	}
	return found
}

// ours reports whether process pid, running (not a zombie), was started
// by the postmaster. While the postmaster runs, its parent is the
// postmaster. Once the postmaster has exited, its children are another's
// (init's, or a subreaper's): then it is a process named postgres, of the
// postmaster's user, that started while the postmaster ran, whose parent
// is not a postgres (the postmaster of another server on the same data
// directory, one that refused this one with its lock file, and its
// children are never ours), and that is no postmaster: its command line is
// a child's title ("postgres: checkpointer", "postgres: <user> <database>
// …", which every child of a postmaster sets as it starts, or empty as it
// exits: childTitle), not a postmaster's program and options. Until 2026-12-06 the last check was
// missing, so another server's postmaster started meanwhile by another
// process (a parallel test's, the chaos run's) was taken for one of ours
// and shut down (immediate, SIGQUIT) by this one's Stop.
func (s *Server) ours(pid int) bool {
	st, ok := childproc.ReadStat(pid)
	if !ok || st.State == "Z" {
		return false
	}
	select {
	case <-s.exited:
	default:
		return st.PPID == s.proc.Pid
	}
	if !s.known || st.Comm != "postgres" || st.Start < s.start || st.Start > s.end {
		return false
	}
	if uid, ok := childproc.UID(pid); !ok || uid != s.uid {
		return false
	}
	if !childTitle(pid) {
		return false
	}
	parent, ok := childproc.ReadStat(st.PPID)
	return !ok || parent.Comm != "postgres" || parent.State == "Z"
}

// childTitle reports whether process pid's command line is the title a
// postmaster's child gives itself, "postgres: …", or is empty; false when it
// cannot be read (no /proc, or the process gone). A process reads empty
// there while it exits, from the release of its memory until it is a
// zombie: a backend that saw its postmaster killed and is ending by itself
// is still one of ours, and Stop waits for it (an exiting postmaster of
// another server taken for one would only be waited for, and signalled in
// vain). Until 2026-12-07 such a backend was not ours for that moment, and
// Stop could return while it ran (TestStopWaitsUntilEveryProcessOfTheServerIsGone
// failed once so in a clean-clone CI: "returned while [26025] … still ran").
func childTitle(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && (len(b) == 0 || bytes.HasPrefix(b, []byte("postgres: ")))
}

// release releases the handles of ps.
func release(ps []*os.Process) {
	for _, p := range ps {
		_ = p.Release()
	}
}

// postgresUser is the credential of the postgres user.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
