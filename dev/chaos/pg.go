package chaos

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
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/childproc"
)

// cluster is a private PostgreSQL cluster: initdb into a directory of its
// own, served on its own port on 127.0.0.1 with trust authentication, so
// restarting it disturbs nobody. As root, the server runs as the postgres
// user (initdb refuses root).
//
// The server (its postmaster) is this process's child, started through
// childproc, so on Linux it dies with the chaos run even when the run is
// killed (SIGKILL: no Close runs), and its backends follow it (each watches
// the postmaster). Until 2026-12-06 it was started with `pg_ctl start`,
// which detaches the postmaster (setsid, its parent pg_ctl gone): a killed
// run left a PostgreSQL serving its temporary directory on a random port.
type cluster struct {
	bin, dir string
	port     int
	asUser   bool
	logf     func(format string, args ...any) // the chaos run's log

	mu     sync.Mutex
	server *postmaster // nil when stopped
}

// postmaster is one run of the server.
type postmaster struct {
	proc   *os.Process
	exited chan struct{} // closed once proc has exited
	err    error         // its Wait's result, set before exited is closed
}

// pgBinDir is the directory of PostgreSQL's server binaries: that of
// postgres on PATH, else the newest /usr/lib/postgresql/*/bin (Debian keeps
// them off PATH). It looks for postgres, which the cluster runs, not pg_ctl,
// which it no longer needs.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	if len(dirs) == 0 {
		return "", errors.New("chaos: PostgreSQL server binaries not found (apt-get install postgresql)")
	}
	return dirs[len(dirs)-1], nil
}

// startCluster creates the cluster in dir and starts its server on port;
// logf receives what the run's log should tell of it (a server found dead).
func startCluster(ctx context.Context, dir string, port int, logf func(format string, args ...any)) (*cluster, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, port: port, asUser: os.Geteuid() == 0, logf: logf}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if c.asUser {
		if out, err := exec.Command("chown", "-R", "postgres:postgres", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %v: %s", dir, err, out)
		}
	}
	if err := c.run(ctx, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, err
	}
	return c, c.start(ctx)
}

// URL is the connection URL of database name.
func (c *cluster) URL(name string) string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(c.port) + "/" + name + "?sslmode=disable"
}

func (c *cluster) run(ctx context.Context, prog string, args ...string) error {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if c.asUser {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	// Its own process group: a Ctrl-C of the chaos run must not reach the
	// server before the run stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w\n%s", prog, args, err, out)
	}
	return nil
}

// start runs the postmaster and waits until it accepts connections (as
// `pg_ctl start -w -t 120` did).
func (c *cluster) start(ctx context.Context) error {
	logFile, err := os.OpenFile(filepath.Join(c.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the server holds its own copy
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", filepath.Join(c.dir, "data"), "-p", strconv.Itoa(c.port),
		"-k", c.dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=on")
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C of the chaos run must not reach the
	// server before the run stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.asUser {
		// The postmaster itself runs as postgres, not a child of runuser
		// (which forks and waits): the parent-death signal childproc sets
		// must reach the server. Go sets it after changing the user, which
		// would clear it.
		cred, err := postgresUser()
		if err != nil {
			return err
		}
		cmd.SysProcAttr.Credential = cred
	}
	waited, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	server := &postmaster{proc: cmd.Process, exited: make(chan struct{})}
	go func() { server.err = <-waited; close(server.exited) }()
	c.mu.Lock()
	c.server = server
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return nil
		}
		select {
		case <-server.exited:
			return fmt.Errorf("postgres exited at start (%s): %w", filepath.Join(c.dir, "server.log"), err)
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready (%s): %w", filepath.Join(c.dir, "server.log"), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop asks the postmaster for a shutdown in mode (SIGINT: fast, SIGQUIT:
// immediate) and waits until it has exited. A postmaster that had already
// exited on its own (killed, crashed) is stopped as well: stop logs it,
// waits for the backends it left (reviving says so), and returns nil, so
// that a restart starts it again, as `pg_ctl restart` did.
func (c *cluster) stop(mode syscall.Signal) (reviving bool, err error) {
	c.mu.Lock()
	server := c.server
	c.server = nil
	c.mu.Unlock()
	if server == nil {
		return false, nil
	}
	select {
	case <-server.exited:
		return true, c.died(server)
	default:
	}
	if err := server.proc.Signal(mode); err != nil {
		if !errors.Is(err, os.ErrProcessDone) {
			return false, fmt.Errorf("stop postgres: %w", err)
		}
		// Reaped between the look at exited and the signal: exited is
		// about to be closed, and server.err set.
		<-server.exited
		return true, c.died(server)
	}
	select {
	case <-server.exited:
		return false, nil
	case <-time.After(120 * time.Second):
		_ = server.proc.Kill()
		<-server.exited
		return false, errors.New("postgres did not stop within 120 s; killed")
	}
}

// died logs a postmaster that exited on its own and waits until the
// backends it left are gone: a postmaster killed outright leaves them
// running until they notice, attached to its shared memory, and a new one
// started meanwhile refuses to ("pre-existing shared memory block is still
// in use"). They are in its process group (Setpgid): they are asked to quit
// at once, as an immediate shutdown asks them, and the group is watched
// until none of them runs (a zombie left for whoever adopted it to reap
// holds nothing).
func (c *cluster) died(server *postmaster) error {
	c.logf("PostgreSQL had exited on its own (%v); see %s", server.err, filepath.Join(c.dir, "server.log"))
	group := server.proc.Pid
	_ = syscall.Kill(-group, syscall.SIGQUIT)
	for deadline := time.Now().Add(30 * time.Second); childproc.GroupAlive(group); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-group, syscall.SIGKILL)
			return errors.New("the backends of a postmaster that exited on its own still ran 30 s later; killed")
		}
	}
	return nil
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
