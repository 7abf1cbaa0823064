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
// follow it (each watches the postmaster). `pg_ctl start` would detach it
// (setsid, its parent pg_ctl gone): a killed test or chaos run left a
// PostgreSQL serving a temporary directory on a random port.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

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
// the postgres user where the server runs as that user, and in a process
// group of its own (a Ctrl-C at the terminal must not reach it before the
// caller decides). The error carries prog's output.
func Run(ctx context.Context, bin, dir, prog string, args ...string) error {
	path := filepath.Join(bin, prog)
	cmd := exec.CommandContext(ctx, path, args...)
	if asPostgres() {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", prog, args, err, out)
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
}

// Server is one run of a postmaster.
type Server struct {
	proc   *os.Process
	exited chan struct{} // closed once proc has exited
	err    error         // its Wait's result, set before exited is closed
}

// Start starts the postmaster in the foreground (in a process group of its
// own, whose id is its pid) and returns once the superuser postgres can log
// in on its Unix socket. A server that exits or is not ready in time is not
// left behind: Start stops it and returns an error naming the log.
func Start(ctx context.Context, c Config) (*Server, error) {
	logFile, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the server holds its own copy
	args := []string{"-D", c.Data, "-p", strconv.Itoa(c.Port), "-k", c.SocketDir, "-c", "listen_addresses=127.0.0.1"}
	for _, s := range c.Settings {
		args = append(args, "-c", s)
	}
	cmd := exec.Command(filepath.Join(c.Bin, "postgres"), args...)
	cmd.Dir = c.SocketDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C at the terminal must not reach the
	// server before its caller stops it, and Stop waits for the group.
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
	waited, err := childproc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{proc: cmd.Process, exited: make(chan struct{})}
	go func() { s.err = <-waited; close(s.exited) }()

	timeout := c.StartTimeout
	if timeout == 0 {
		timeout = 120 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dsn := "host=" + c.SocketDir + " port=" + strconv.Itoa(c.Port) + " user=postgres dbname=postgres sslmode=disable"
	for {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return s, nil
		}
		select {
		case <-s.exited:
			_, _ = s.Stop(syscall.SIGQUIT, 30*time.Second) // its backends, if any
			return nil, fmt.Errorf("postgres exited at start (%v; %s): %w", s.err, c.Log, err)
		case <-ctx.Done():
			_, _ = s.Stop(syscall.SIGQUIT, 30*time.Second)
			return nil, fmt.Errorf("postgres not ready within %v (%s): %w", timeout, c.Log, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
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
// immediate) and waits until it has exited and no process of its group
// runs; what still runs after timeout is killed and Stop says so. A
// postmaster that had exited on its own (killed, crashed) gets no signal:
// died says so (Err tells how it ended), and Stop waits for the backends
// it left, asked to quit at once as an immediate shutdown asks them (a
// postmaster killed outright leaves them running, attached to its shared
// memory, and a new one started meanwhile on the same data directory
// refuses to: "pre-existing shared memory block is still in use").
func (s *Server) Stop(mode syscall.Signal, timeout time.Duration) (died bool, err error) {
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
	if died {
		_ = syscall.Kill(-s.proc.Pid, syscall.SIGQUIT)
	} else {
		select {
		case <-s.exited:
		case <-time.After(timeout):
			_ = s.proc.Kill()
			<-s.exited
			_ = syscall.Kill(-s.proc.Pid, syscall.SIGKILL)
			return false, fmt.Errorf("postgres did not stop within %v; killed", timeout)
		}
	}
	// A zombie left for whoever adopted it to reap holds nothing.
	for deadline := time.Now().Add(timeout); childproc.GroupAlive(s.proc.Pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-s.proc.Pid, syscall.SIGKILL)
			return died, fmt.Errorf("the processes of postgres's group still ran %v after its postmaster exited; killed", timeout)
		}
	}
	return died, nil
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
