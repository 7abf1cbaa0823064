// Package supervisor runs named groups of replica processes on loopback
// ports: it starts each replica in its own process group, marks it available
// once its health endpoint answers 200, restarts it with capped backoff when
// it exits, chooses an available replica round-robin for each call, and stops
// replicas in the order a graceful stop needs (out of rotation first, then
// SIGTERM to the group, SIGKILL after a grace period). Kill crashes a
// replica on request (the chaos run) without ever signalling a group id that
// may have been freed, nor a replica whose stop has begun.
//
// The supervisor knows processes, not OpenFaaS: the function store and the
// runtime decide what runs and why.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Spec is how to start one replica of a group. The supervisor adds PORT, a
// free loopback port chosen for each start.
type Spec struct {
	// Path is the executable.
	Path string
	// Args are its arguments, without the program name.
	Args []string
	// Env is its whole environment (KEY=value), nothing is inherited.
	Env []string
	// Dir is its working directory.
	Dir string
}

// Config tunes a Supervisor. Zero values get the defaults documented per field.
type Config struct {
	// Grace is how long a stopped process gets between SIGTERM and SIGKILL
	// (default 10s).
	Grace time.Duration
	// HealthPath is probed on each replica's port; 200 means available
	// (default /_/health, what fnserve and the template serve).
	HealthPath string
	// Output receives every line a replica writes to stdout or stderr, and the
	// supervisor's notices about it (default: discarded).
	Output func(group, instance, line string)
}

func (c *Config) setDefaults() {
	if c.Grace <= 0 {
		c.Grace = 10 * time.Second
	}
	if c.HealthPath == "" {
		c.HealthPath = "/_/health"
	}
	if c.Output == nil {
		c.Output = func(string, string, string) {}
	}
}

// Errors returned by the supervisor's operations.
var (
	// ErrUnknown is returned for a group that is not running.
	ErrUnknown = errors.New("no such process group")
	// ErrExists is returned by Start for a group that is already running.
	ErrExists = errors.New("process group already running")
	// ErrClosed is returned once Close has begun.
	ErrClosed = errors.New("supervisor is closed")
)

// Supervisor runs groups of replicas. Its methods are safe for concurrent
// use; callers that need several calls to act as one (stop then start)
// serialise them themselves.
type Supervisor struct {
	cfg    Config
	health *http.Client
	ctx    context.Context // parent of every replica; cancelled by Close
	cancel context.CancelFunc

	// mu is taken before a replica's lock or its process group's (Pick,
	// Replicas, Kill), never while holding either; Kill lets the replica's
	// go before it takes the group's.
	mu      sync.Mutex
	groups  map[string]*group
	changed chan struct{} // closed and replaced whenever a replica changes state
	closed  bool
}

// group is the replicas of one name, all started from the same Spec.
type group struct {
	spec     Spec
	replicas []*replica
	seq      int    // numbers instances <name>-1, <name>-2, ...
	next     uint64 // round-robin position
}

// New returns a Supervisor with no groups.
func New(cfg Config) *Supervisor {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{cfg: cfg, health: &http.Client{Timeout: time.Second}, ctx: ctx, cancel: cancel,
		groups: map[string]*group{}, changed: make(chan struct{})}
}

// Start runs n replicas of spec under name and returns at once; replicas
// become available as their health checks pass (see WaitReady). It returns
// ErrExists when name is running: replacing a group is Remove then Start.
func (s *Supervisor) Start(name string, spec Spec, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.groups[name] != nil:
		return fmt.Errorf("%s: %w", name, ErrExists)
	}
	g := &group{spec: spec}
	s.groups[name] = g
	s.growLocked(name, g, n)
	s.notifyLocked()
	return nil
}

// Scale starts or stops replicas of name until it has n, and returns once
// the stopped ones are gone. The newest replicas are stopped first.
func (s *Supervisor) Scale(name string, n int) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	g := s.groups[name]
	if g == nil {
		s.mu.Unlock()
		return fmt.Errorf("%s: %w", name, ErrUnknown)
	}
	s.growLocked(name, g, n)
	var surplus []*replica
	if len(g.replicas) > n {
		surplus = g.replicas[n:]
		g.replicas = g.replicas[:n:n]
	}
	s.notifyLocked()
	s.mu.Unlock()
	return s.stopAll(surplus)
}

// Replace runs name from spec with n replicas without a moment where no
// replica answers: the new replicas start next to the running ones and join
// the rotation as their health checks pass; once all of them are available
// (or ctx ends first, e.g. a new version that never becomes healthy), the old
// replicas leave the rotation and are stopped, each as stop describes. A name
// that is not running is simply started. It fails before changing anything
// only with ErrClosed; any other error is from stopping the old replicas,
// after the new ones took over.
func (s *Supervisor) Replace(ctx context.Context, name string, spec Spec, n int) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	g := s.groups[name]
	if g == nil {
		g = &group{spec: spec}
		s.groups[name] = g
		s.growLocked(name, g, n)
		s.notifyLocked()
		s.mu.Unlock()
		return nil
	}
	old := g.replicas
	g.spec = spec
	g.replicas = nil
	s.growLocked(name, g, n)
	fresh := g.replicas
	g.replicas = append(slices.Clone(old), fresh...)
	s.notifyLocked()
	s.mu.Unlock()

	if err := s.waitAvailable(ctx, fresh); err != nil {
		s.cfg.Output(name, name, "faas-local: replacing without waiting any longer: "+err.Error())
	}
	s.mu.Lock()
	if s.groups[name] == g {
		g.replicas = slices.DeleteFunc(slices.Clone(g.replicas), func(r *replica) bool { return slices.Contains(old, r) })
	}
	s.notifyLocked()
	s.mu.Unlock()
	return s.stopAll(old)
}

// waitAvailable waits until every replica of rs is available.
func (s *Supervisor) waitAvailable(ctx context.Context, rs []*replica) error {
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		pending := 0
		for _, r := range rs {
			if !r.available() {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%d new replicas not available: %w", pending, ctx.Err())
		}
	}
}

// Remove stops every replica of name and forgets the group.
func (s *Supervisor) Remove(name string) error {
	s.mu.Lock()
	g := s.groups[name]
	delete(s.groups, name)
	s.mu.Unlock()
	if g == nil {
		return fmt.Errorf("%s: %w", name, ErrUnknown)
	}
	return s.stopAll(g.replicas)
}

// growLocked starts replicas until g has n; s.mu must be held.
func (s *Supervisor) growLocked(name string, g *group, n int) {
	for len(g.replicas) < n {
		g.seq++
		g.replicas = append(g.replicas, s.launch(name, name+"-"+strconv.Itoa(g.seq), g.spec))
	}
}

// stopAll stops replicas in parallel and joins their errors.
func (s *Supervisor) stopAll(rs []*replica) error {
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { errs[i] = s.stop(r) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stop ends a replica that is already out of rotation: every caller first
// removes it from its group's list under s.mu (Scale, Remove, Replace,
// Close), so Pick can no longer return it nor Kill crash it, and calls
// already sent to it go on. Then:
//
//  1. drain: waiting for r's calls in flight belongs here, so that a replica
//     stopped by scale-down, redeploy or removal finishes its work before it
//     is signalled;
//  2. terminate: SIGTERM to r's process group, SIGKILL after Grace, and wait
//     until the group is gone.
func (s *Supervisor) stop(r *replica) error {
	return r.terminate()
}

// Pick returns the host:port of an available replica of name, round-robin,
// waiting for one until ctx is done. It returns ErrUnknown when name is not
// running.
func (s *Supervisor) Pick(ctx context.Context, name string) (string, error) {
	for {
		s.mu.Lock()
		g, changed := s.groups[name], s.changed
		addr := ""
		if g != nil {
			addr = g.pickLocked()
		}
		s.mu.Unlock()
		switch {
		case g == nil:
			return "", fmt.Errorf("%s: %w", name, ErrUnknown)
		case addr != "":
			return addr, nil
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return "", fmt.Errorf("no replica of %s is available: %w", name, ctx.Err())
		}
	}
}

// pickLocked returns the next available replica's address after the
// round-robin position, or "" when none is available.
func (g *group) pickLocked() string {
	if len(g.replicas) == 0 {
		return ""
	}
	start := g.next
	g.next++
	for i := range g.replicas {
		if addr, ok := g.replicas[(int(start)+i)%len(g.replicas)].addr(); ok {
			return addr
		}
	}
	return ""
}

// Count reports how many replicas name has and how many are available;
// zeros when it is not running.
func (s *Supervisor) Count(name string) (replicas, available int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[name]
	if g == nil {
		return 0, 0
	}
	return len(g.replicas), g.availableLocked()
}

func (g *group) availableLocked() int {
	n := 0
	for _, r := range g.replicas {
		if r.available() {
			n++
		}
	}
	return n
}

// Replicas describes name's replicas, oldest first (nil when not running).
func (s *Supervisor) Replicas(name string) []ReplicaInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[name]
	if g == nil {
		return nil
	}
	out := make([]ReplicaInfo, 0, len(g.replicas))
	for _, r := range g.replicas {
		out = append(out, r.info())
	}
	return out
}

// Kill SIGKILLs the process group of replica rep of name, as a crash would
// (the replica restarts as after any exit), and reports whether the signal
// was sent. rep is the replica as Replicas described it: its Instance and
// PID. The signal goes out only while rep.PID is still that replica's
// current process and has not exited, under the lock StartGroup's exit hook
// takes: on Linux the leader is then unreaped, so the group's id cannot
// belong to another process group yet. A replica that exited since (even
// one already restarted as another process), whose stop has begun or that
// was removed is not signalled, and that is not an error. Elsewhere (macOS)
// the exit hook runs just after the reaping, which leaves the window
// leaderGroup describes. It returns ErrUnknown when name is not running.
//
// A stop begins when its replica leaves its group's list under s.mu (Scale,
// Remove, Replace, Close: see stop), and Kill finds its target in that list
// and signals it without letting s.mu go, so the two are ordered: a stop
// that comes first leaves Kill no target, and one that comes during a Kill
// waits for its signal and then stops a replica that has crashed. A
// replica draining after its stop's SIGTERM is never SIGKILLed by Kill,
// which would cut the calls it was finishing: the drain the stop promised.
// Taking the target from the list and signalling it later, as Kill did
// until 2026-12-06, let a stop begin in between. Holding s.mu across the
// signal costs whoever waits for it (Pick) a kill(2): a replica still in
// its group's list is not being stopped, so only its exit hook, which
// signals and returns, can hold the group's lock.
//
// Kill exists for the chaos run, which picks a replica from Replicas and
// kills it some time later: a pid kept that long and signalled by number
// (kill(-pid)) could reach whatever process group took the id since.
func (s *Supervisor) Kill(name string, rep ReplicaInfo) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[name]
	if g == nil {
		return false, fmt.Errorf("%s: %w", name, ErrUnknown)
	}
	if rep.PID <= 0 {
		return false, nil
	}
	for _, r := range g.replicas {
		if r.instance == rep.Instance {
			return r.kill(rep.PID)
		}
	}
	return false, nil
}

// WaitReady waits until every replica of every named group is available. A
// name that is not running is an error.
func (s *Supervisor) WaitReady(ctx context.Context, names ...string) error {
	for {
		s.mu.Lock()
		changed := s.changed
		var pending []string
		for _, n := range names {
			g := s.groups[n]
			if g == nil {
				s.mu.Unlock()
				return fmt.Errorf("%s: %w", n, ErrUnknown)
			}
			if g.availableLocked() < len(g.replicas) {
				pending = append(pending, n)
			}
		}
		s.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("not ready: %v: %w", pending, ctx.Err())
		}
	}
}

// Close stops every replica of every group (each as stop describes, all in
// parallel) and returns their errors joined. Later Start and Scale calls
// return ErrClosed.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	s.closed = true
	var all []*replica
	for _, g := range s.groups {
		all = append(all, g.replicas...)
	}
	clear(s.groups)
	s.mu.Unlock()
	err := s.stopAll(all)
	s.cancel()
	return err
}

// notify wakes everyone waiting for a replica to change state.
func (s *Supervisor) notify() {
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *Supervisor) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}
