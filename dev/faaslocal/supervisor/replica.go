package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shopfaas/shop/internal/childproc"
)

// ReplicaInfo describes a replica, for tests and diagnostics.
type ReplicaInfo struct {
	// Instance names the replica in log messages (<group>-<n>).
	Instance string
	// PID is the process id of the replica's current process (0 between restarts).
	PID int
	// Port is the loopback port the current process serves on.
	Port int
	// Available is true while the replica's process answers its health check.
	Available bool
	// Restarts counts unexpected exits that led to a restart.
	Restarts int
}

// Restart backoff: the first restart waits minBackoff, each following one
// twice as long up to maxBackoff; a process that ran for stableAfter resets it.
// minBackoff is a variable only so that a test can hold a replica between
// its exit and its restart (SetMinBackoff, export_test.go).
var minBackoff = 250 * time.Millisecond

const (
	maxBackoff  = 10 * time.Second
	stableAfter = 30 * time.Second
)

// replica is one supervised process slot. Its goroutine (run) starts the
// process, restarts it when it exits, and ends it when the replica is
// terminated.
type replica struct {
	s        *Supervisor
	group    string
	instance string
	spec     Spec
	cancel   context.CancelFunc
	done     chan struct{} // closed when run returned and the process group is gone

	healthy atomic.Bool // the current process answers its health check

	mu       sync.Mutex
	pid      int
	port     int
	leader   *leaderGroup // the current process's group, nil between processes and once it is being stopped
	restarts int
	stopErr  error // what ending the last process failed with
}

// launch starts a replica's goroutine and returns at once.
func (s *Supervisor) launch(group, instance string, spec Spec) *replica {
	ctx, cancel := context.WithCancel(s.ctx)
	r := &replica{s: s, group: group, instance: instance, spec: spec, cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r
}

func (r *replica) available() bool { return r.healthy.Load() }

func (r *replica) info() ReplicaInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReplicaInfo{Instance: r.instance, PID: r.pid, Port: r.port, Available: r.available(), Restarts: r.restarts}
}

// addr is the replica's host:port while it is available.
func (r *replica) addr() (string, bool) {
	if !r.available() {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), true
}

// terminate ends the replica's process group (SIGTERM, SIGKILL after the
// grace period) and waits until it is gone.
func (r *replica) terminate() error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopErr
}

func (r *replica) notice(format string, args ...any) {
	r.s.cfg.Output(r.group, r.instance, "faas-local: "+fmt.Sprintf(format, args...))
}

// run starts the process again after every unexpected exit, waiting a
// growing backoff in between, until ctx is done.
func (r *replica) run(ctx context.Context) {
	defer close(r.done)
	backoff := minBackoff
	for {
		started := time.Now()
		err := r.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > stableAfter {
			backoff = minBackoff
		}
		r.notice("replica exited (%v), restarting in %s", err, backoff)
		r.mu.Lock()
		r.restarts++
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// runOnce runs one process until it exits or ctx is done.
func (r *replica) runOnce(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(r.spec.Path, r.spec.Args...)
	cmd.Dir = r.spec.Dir
	cmd.Env = append(append([]string(nil), r.spec.Env...), "PORT="+strconv.Itoa(port))
	// Own process group, so stopping reaches every child (sh -c, go run...);
	// childproc.Start kills the leader if the runtime itself dies without
	// cleanup, however long after the start.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// An *os.File pipe: Wait returns when the leader exits, even while
	// children still hold the write end; the reader ends when all are gone.
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	// A leader that exits on its own takes its process group with it,
	// signalled before the leader is reaped (StartGroup: the group's id is
	// then still its own), so a restarted replica never competes with
	// orphans. Not once the replica is being stopped: the group's
	// processes then drain for the rest of the grace period (below).
	var stopping atomic.Bool
	g := &leaderGroup{}
	exited, err := childproc.StartGroup(cmd, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.leaderGone = true
		if !stopping.Load() {
			_ = killGroup(cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	_ = pw.Close()
	if err != nil {
		_ = pr.Close()
		return fmt.Errorf("start %s: %w", r.spec.Path, err)
	}
	g.pgid = cmd.Process.Pid
	r.mu.Lock()
	r.pid, r.port, r.leader = cmd.Process.Pid, port, g
	r.mu.Unlock()

	copied := make(chan struct{})
	go func() { defer close(copied); r.copyLines(pr) }()
	// Every exit path below ends the process group first; the copier then
	// reads to EOF, and runOnce returns only after the last line reached
	// Output (bounded: a process that left the group may hold the pipe).
	defer waitCopied(copied)
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	go r.probe(probeCtx, port)

	select {
	case err := <-exited:
		r.markDown() // its group killed as it exited (StartGroup above)
		if err == nil {
			err = errors.New("exit status 0")
		}
		return err
	case <-ctx.Done():
	}
	stopping.Store(true)
	r.markDown()
	r.setStopErr(g.signal(syscall.SIGTERM))
	grace := time.NewTimer(r.s.cfg.Grace)
	defer grace.Stop()
	select {
	case <-exited:
	case <-grace.C:
		r.notice("still running %s after SIGTERM, killed", r.s.cfg.Grace)
		_ = g.signal(syscall.SIGKILL)
		<-exited
		return ctx.Err()
	}
	// A leader that exits at once on SIGTERM (sh -c <fprocess> when the
	// shell does not exec it, as dash does not) leaves the function process
	// draining in the group: it gets the rest of the grace period too, then
	// whatever is left (children that ignored SIGTERM) is killed. Killing
	// it at once reset the calls it was still serving (issue 9).
	if !waitGroupGone(g.pgid, grace.C) {
		r.notice("children still running %s after SIGTERM, killed", r.s.cfg.Grace)
		_ = g.signal(syscall.SIGKILL)
	}
	return ctx.Err()
}

// leaderGroup is the process group a replica's process leads, signalled by
// its id (kill(-pgid)). The id is the leader's pid, which no new process
// or group can take while the leader is unreaped or any member of the group
// lives: so the group is signalled only then, never by an id that may by
// now be another group's.
type leaderGroup struct {
	pgid int // set before any signal

	mu sync.Mutex
	// leaderGone is set by StartGroup's exit hook: on Linux before the
	// leader is reaped; elsewhere (childproc's other systems, macOS) just
	// after, so there a signal sent between the reap and the hook may reach
	// a group that took the freed id since.
	leaderGone bool
}

// killGroup sends sig to process group pgid; tests replace it to see which
// signals go out.
var killGroup = func(pgid int, sig syscall.Signal) error { return syscall.Kill(-pgid, sig) }

// signal sends sig to the group while its leader is unreaped, or after that
// while a member still lives (childproc.GroupAlive; a member that exits in
// between and frees the id leaves a window of a few instructions, against
// the kernel's whole pid space to wrap around). A group that is gone is not
// an error.
func (g *leaderGroup) signal(sig syscall.Signal) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leaderGone && !childproc.GroupAlive(g.pgid) {
		return nil
	}
	if err := killGroup(g.pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process group %d: %w", g.pgid, err)
	}
	return nil
}

// killLeader SIGKILLs the group if pid is its leader and the leader has not
// exited (StartGroup's exit hook has not run: on Linux the leader is then
// unreaped, so the id is still this group's); it reports whether the signal
// was sent. A leader that exited is not an error: the exit hook has already
// killed the group.
func (g *leaderGroup) killLeader(pid int) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leaderGone || g.pgid != pid {
		return false, nil
	}
	switch err := killGroup(g.pgid, syscall.SIGKILL); {
	case errors.Is(err, syscall.ESRCH):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("kill process group %d: %w", g.pgid, err)
	}
	return true, nil
}

// kill SIGKILLs the replica's process group if pid leads it and has not
// exited (leaderGroup.killLeader); the replica then restarts as after any
// crash. It reports whether the signal was sent. Its caller (Kill) holds
// s.mu, so no stop of r can begin meanwhile.
func (r *replica) kill(pid int) (bool, error) {
	r.mu.Lock()
	g := r.leader
	r.mu.Unlock()
	if g == nil {
		return false, nil
	}
	beforeKillSignal()
	return g.killLeader(pid)
}

// beforeKillSignal runs in kill between taking the replica's process group
// and signalling it; a test replaces it to begin a stop right there.
var beforeKillSignal = func() {}

// waitGroupGone polls until process group pgid has no live member (a zombie
// left to a parent that does not reap it counts as gone) or until deadline
// fires; false when it fired first.
func waitGroupGone(pgid int, deadline <-chan time.Time) bool {
	for childproc.GroupAlive(pgid) {
		select {
		case <-deadline:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

func (r *replica) setStopErr(err error) {
	r.mu.Lock()
	r.stopErr = err
	r.mu.Unlock()
}

// markDown records that the current process is gone or being stopped:
// from then on kill no longer reaches it.
func (r *replica) markDown() {
	r.healthy.Store(false)
	r.mu.Lock()
	r.pid, r.leader = 0, nil
	r.mu.Unlock()
	r.s.notify()
}

// probe polls the health path until it answers 200, then keeps checking
// every second: a 503 (a draining process) takes it out of rotation at once,
// and a wedged process stops receiving traffic after three failures in a row.
func (r *replica) probe(ctx context.Context, port int) {
	url := "http://127.0.0.1:" + strconv.Itoa(port) + r.s.cfg.HealthPath
	interval := 50 * time.Millisecond
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		status := r.s.healthStatus(ctx, url)
		switch {
		case status == http.StatusOK:
			failures = 0
			if !r.healthy.Swap(true) {
				r.s.notify()
			}
			interval = time.Second
		case status == http.StatusServiceUnavailable && r.healthy.Load():
			// A definite answer: the process is draining (fnserve after
			// SIGTERM) and still serves, so take it out of rotation now.
			r.healthy.Store(false)
			r.s.notify()
			interval = 50 * time.Millisecond
		case r.healthy.Load():
			if failures++; failures >= 3 {
				r.healthy.Store(false)
				r.s.notify()
				interval = 50 * time.Millisecond
			}
		default:
			interval = min(interval*2, 500*time.Millisecond)
		}
	}
}

// healthStatus is the health path's status code, 0 without an answer.
func (s *Supervisor) healthStatus(ctx context.Context, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	res, err := s.health.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	_ = res.Body.Close()
	return res.StatusCode
}

// copyWait bounds how long a stopped replica waits for its output copier.
const copyWait = 2 * time.Second

// waitCopied waits until the copier is done or copyWait has passed.
func waitCopied(copied <-chan struct{}) {
	t := time.NewTimer(copyWait)
	defer t.Stop()
	select {
	case <-copied:
	case <-t.C:
	}
}

// maxLine caps an output line as Output gets it: a longer line is cut
// there, marked cutMark, and the rest of it dropped. One huge line neither
// stops the copy (until 2026-12-05 a line over 1 MiB ended the scanner, and
// every later line of the process was discarded until it restarted) nor
// fills the log ring with megabytes.
const maxLine = 64 << 10

// cutMark ends a line cut at maxLine.
const cutMark = " [line cut at 64 KiB]"

// copyLines hands every output line of the process group to Output.
func (r *replica) copyLines(out *os.File) {
	defer out.Close()
	rd := bufio.NewReaderSize(out, maxLine)
	for {
		line, more, err := rd.ReadLine()
		if err != nil {
			return // EOF: the process group closed its output
		}
		text := string(line)
		if more {
			text += cutMark
			for more && err == nil {
				_, more, err = rd.ReadLine()
			}
		}
		r.s.cfg.Output(r.group, r.instance, text)
		if err != nil {
			return
		}
	}
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before the replica binds; the replica then exits and is restarted.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
