package faaslocal

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
)

// procSpec is how to start one replica: the command and its environment
// without PORT, which is chosen per start.
type procSpec struct {
	path string
	args []string
	env  []string
	dir  string
}

// replica is one supervised process slot of a function. Its goroutine starts
// the process, marks it available once /_/health answers 200, restarts it
// with capped backoff when it exits unexpectedly, and stops it (SIGTERM to
// the process group, SIGKILL after the grace period) when cancelled.
type replica struct {
	fn        string
	instance  string
	cancel    context.CancelFunc
	done      chan struct{}
	available atomic.Bool
	mu        sync.Mutex
	pid       int
	port      int
	restarts  int
}

// ReplicaInfo describes a running replica, for tests and diagnostics.
type ReplicaInfo struct {
	// Instance names the replica in log messages (<function>-<n>).
	Instance string
	// PID is the process id of the replica's current process (0 between restarts).
	PID int
	// Port is the loopback port the current process serves on.
	Port int
	// Available is true once the process answered its health check.
	Available bool
	// Restarts counts unexpected exits that led to a restart.
	Restarts int
}

func (r *replica) info() ReplicaInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReplicaInfo{Instance: r.instance, PID: r.pid, Port: r.port, Available: r.available.Load(), Restarts: r.restarts}
}

func (r *replica) addr() (string, bool) {
	if !r.available.Load() {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), true
}

// supervisor runs replicas; it is shared by every function of a Runtime.
type supervisor struct {
	grace   time.Duration
	sink    func(fn, instance, line string)
	onState func()
	health  *http.Client
}

// start launches a replica goroutine and returns at once.
func (s *supervisor) start(parent context.Context, fn, instance string, spec procSpec) *replica {
	ctx, cancel := context.WithCancel(parent)
	r := &replica{fn: fn, instance: instance, cancel: cancel, done: make(chan struct{})}
	go s.loop(ctx, r, spec)
	return r
}

// stop cancels the replica and waits until its process group is gone.
func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func (s *supervisor) loop(ctx context.Context, r *replica, spec procSpec) {
	defer close(r.done)
	backoff := 250 * time.Millisecond
	for {
		started := time.Now()
		err := s.runOnce(ctx, r, spec)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > 30*time.Second {
			backoff = 250 * time.Millisecond
		}
		s.sink(r.fn, r.instance, fmt.Sprintf("faas-local: replica exited (%v), restarting in %s", err, backoff))
		r.mu.Lock()
		r.restarts++
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// runOnce runs one process of the replica until it exits or ctx is done.
func (s *supervisor) runOnce(ctx context.Context, r *replica, spec procSpec) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(spec.path, spec.args...)
	cmd.Dir = spec.dir
	cmd.Env = append(append([]string(nil), spec.env...), "PORT="+strconv.Itoa(port))
	// Own process group, so stopping reaches every child (sh -c, go run...);
	// Pdeathsig kills the leader if the runtime itself dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// An *os.File pipe: Wait returns when the leader exits, even while
	// children still hold the write end; the reader ends when all are gone.
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	_ = pw.Close()
	if err != nil {
		_ = pr.Close()
		return fmt.Errorf("start %s: %w", spec.path, err)
	}
	r.mu.Lock()
	r.pid, r.port = cmd.Process.Pid, port
	r.mu.Unlock()

	go func() {
		defer pr.Close()
		s.copyLines(r, pr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	healthCtx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	go s.probe(healthCtx, r, port)

	select {
	case err := <-exited:
		s.markDown(r)
		// The leader is gone: take its process group with it, so a
		// restarted replica never competes with orphans.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return exitError(err)
	case <-ctx.Done():
	}
	s.markDown(r)
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(s.grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	// Children that ignored SIGTERM and outlived the leader.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return ctx.Err()
}

func exitError(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

func (s *supervisor) markDown(r *replica) {
	r.available.Store(false)
	r.mu.Lock()
	r.pid = 0
	r.mu.Unlock()
	s.onState()
}

// probe polls /_/health until it answers 200, then keeps checking every
// second so a wedged process stops receiving traffic.
func (s *supervisor) probe(ctx context.Context, r *replica, port int) {
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/_/health"
	interval := 50 * time.Millisecond
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		ok := s.healthy(ctx, url)
		switch {
		case ok:
			failures = 0
			if !r.available.Swap(true) {
				s.onState()
			}
			interval = time.Second
		case r.available.Load():
			if failures++; failures >= 3 {
				r.available.Store(false)
				s.onState()
				interval = 50 * time.Millisecond
			}
		default:
			interval = min(interval*2, 500*time.Millisecond)
		}
	}
}

func (s *supervisor) healthy(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	res, err := s.health.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	_ = res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func (s *supervisor) copyLines(r *replica, out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		s.sink(r.fn, r.instance, sc.Text())
	}
	_, _ = io.Copy(io.Discard, out)
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
