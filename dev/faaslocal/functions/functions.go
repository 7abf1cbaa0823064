// Package functions is the local runtime's function store: the deployed
// functions (their faas-provider deployment, creation time and invocation
// count) and the rules of deploying, updating, scaling and removing one.
// What runs is decided here; running it is the supervisor's job, reached
// through the small interfaces below.
package functions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/dev/faaslocal/supervisor"
	"github.com/shopfaas/shop/internal/fault"
)

// replaceWait bounds how long a redeploy waits for the new replicas to
// become available before the old ones stop anyway.
const replaceWait = 2 * time.Minute

// scaleMinLabel sets a function's replica count when it is deployed.
const scaleMinLabel = "com.openfaas.scale.min"

// Error codes of the store's classified errors.
const (
	codeInvalid  = "invalid_deployment"
	codeNotFound = "function_not_found"
)

// serviceName is what a function name may be (a DNS label, as OpenFaaS requires).
var serviceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Supervisor runs the replicas of each function (supervisor.Supervisor).
type Supervisor interface {
	Start(name string, spec supervisor.Spec, n int) error
	// Replace fails before changing anything only with ErrClosed; any
	// other error comes after spec's replicas took over (the old ones
	// failed to stop).
	Replace(ctx context.Context, name string, spec supervisor.Spec, n int) error
	Scale(name string, n int) error
	Remove(name string) error
	Count(name string) (replicas, available int)
}

// Secrets gives each function its declared secrets (secrets.Store).
type Secrets interface {
	// Check fails with fault.Invalid for a secret that does not exist.
	Check(names []string) error
	// MountDir names a new folder for one generation of function's
	// secrets: each deploy gets its own, so that the replicas it replaces
	// keep theirs until they stop.
	MountDir(function string) string
	// Mount fills dir, one of MountDir(function)'s, with exactly the named
	// secrets.
	Mount(function, dir string, names []string) error
	// Release removes dir, a generation no replica uses any longer.
	Release(function, dir string) error
	// Unmount removes function's state folder, every generation included.
	Unmount(function string) error
}

// Launcher decides the process that serves a deployment: its command and
// its environment, given where its secrets are mounted.
type Launcher interface {
	// Process fails with fault.Invalid when nothing can run spec.
	Process(spec types.FunctionDeployment, secretsDir string) (supervisor.Spec, error)
	// Derived lists the environment names Process derives itself and sets
	// over a deployment's (addresses, the function's name, its secrets
	// folder, its drain interval): Status lists those with the value the
	// process gets, every other name as the deployment sent it. None may
	// be a secret.
	Derived() []string
}

// Logs keeps each function's output (logstore.Store).
type Logs interface {
	Open(name string)
	// Forget drops name's lines (a removed function leaves no logs behind).
	Forget(name string)
}

// Config is what a Store needs. MaxReplicas defaults to 5, OpenFaaS CE's
// maximum.
type Config struct {
	// Namespace is the one namespace every function lives in.
	Namespace string
	// MaxReplicas caps the replicas of one function (scale requests and the
	// scale-min label).
	MaxReplicas int
	// Supervisor runs the replicas.
	Supervisor Supervisor
	// Secrets mounts each function's secrets.
	Secrets Secrets
	// Launcher turns a deployment into a process.
	Launcher Launcher
	// Logs is opened for each deployed function, so its logs can be queried
	// before it wrote anything.
	Logs Logs
}

// Store holds the deployed functions. Deploy, Update, Remove and Scale are
// serialised; readers never wait for them.
type Store struct {
	cfg Config
	ops sync.Mutex // serialises changes, held while replicas stop and start

	mu     sync.Mutex // guards fns, waking and deployed
	fns    map[string]*function
	waking map[string]bool // functions a Wake is scaling up
	// deployed is closed and replaced whenever a function is recorded
	// (WaitDeployed).
	deployed chan struct{}
}

// function is one deployed function.
type function struct {
	spec    types.FunctionDeployment
	created time.Time
	invoked *atomic.Uint64 // kept across updates
	// secretsDir is the folder of this generation's secrets (its
	// replicas' SECRETS_DIR).
	secretsDir string
}

// New returns an empty store.
func New(cfg Config) *Store {
	if cfg.MaxReplicas <= 0 {
		cfg.MaxReplicas = 5
	}
	return &Store{cfg: cfg, fns: map[string]*function{}, waking: map[string]bool{}, deployed: make(chan struct{})}
}

func notFound(name string) error {
	return fault.E(fault.NotFound, codeNotFound, fmt.Sprintf("function %q not found", name))
}

func invalid(format string, args ...any) error {
	return fault.E(fault.Invalid, codeInvalid, fmt.Sprintf(format, args...))
}

// Deploy runs spec, replacing the function of the same name if there is one
// (faas-cli deploy over an existing function replaces it, as on faasd).
// Errors: fault.Invalid for a spec that cannot run (checked before anything
// running is touched). A redeploy whose old replicas fail to stop returns
// that error with spec recorded, since spec is what runs.
func (s *Store) Deploy(spec types.FunctionDeployment) error { return s.deploy(spec, false) }

// Update replaces a deployed function with spec: its replicas are stopped,
// then new ones start (update = delete + create, as on faasd). Errors:
// fault.NotFound when it is not deployed, fault.Invalid as Deploy.
func (s *Store) Update(spec types.FunctionDeployment) error { return s.deploy(spec, true) }

func (s *Store) deploy(spec types.FunctionDeployment, mustExist bool) error {
	name := spec.Service
	n, err := s.replicas(spec)
	if err != nil {
		return err
	}
	if err := s.cfg.Secrets.Check(spec.Secrets); err != nil {
		return err
	}
	secretsDir := s.cfg.Secrets.MountDir(name)
	proc, err := s.cfg.Launcher.Process(spec, secretsDir)
	if err != nil {
		return err
	}
	spec.Namespace = s.cfg.Namespace
	spec.EnvVars = listedEnv(spec.EnvVars, proc.Env, s.cfg.Launcher.Derived())

	s.ops.Lock()
	defer s.ops.Unlock()
	old := s.get(name)
	if old == nil && mustExist {
		return notFound(name)
	}
	if old == nil {
		// Nothing of name runs: drop the folders a previous run left.
		if err := s.cfg.Secrets.Unmount(name); err != nil {
			return err
		}
	}
	// A folder of this generation's own: the running replicas keep reading
	// theirs until Replace has stopped them.
	if err := s.cfg.Secrets.Mount(name, secretsDir, spec.Secrets); err != nil {
		return err
	}
	s.cfg.Logs.Open(name)
	invoked := new(atomic.Uint64)
	var replaceErr error
	if old != nil {
		// A redeploy: the new replicas take over before the old ones stop
		// (each out of rotation first, then drained), so calls keep
		// succeeding throughout; the function stays deployed meanwhile.
		invoked = old.invoked
		ctx, cancel := context.WithTimeout(context.Background(), replaceWait)
		err := s.cfg.Supervisor.Replace(ctx, name, proc, n)
		cancel()
		if errors.Is(err, supervisor.ErrClosed) {
			// Nothing changed: the old generation still runs, the new
			// folder is used by no replica.
			_ = s.cfg.Secrets.Release(name, secretsDir)
			return fmt.Errorf("replace %s: %w", name, err)
		}
		if err != nil {
			// The new replicas took over; stopping the old ones failed
			// (they are ended all the same). The new generation is what
			// runs, and is recorded.
			replaceErr = fmt.Errorf("replace %s: %w", name, err)
		}
	} else if err := s.cfg.Supervisor.Start(name, proc, n); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	s.mu.Lock()
	s.fns[name] = &function{spec: spec, created: time.Now().UTC(), invoked: invoked, secretsDir: secretsDir}
	close(s.deployed)
	s.deployed = make(chan struct{})
	s.mu.Unlock()
	if old != nil {
		// The old replicas have stopped. A folder that cannot be removed
		// now goes with the function's state folder (Remove).
		_ = s.cfg.Secrets.Release(name, old.secretsDir)
	}
	return replaceErr
}

// listedEnv is what Status lists as a deployment's envVars (faas-cli
// describe): each name the deployment set, as sent, except that a name the
// launcher derives itself (derived, Launcher.Derived) has the value its
// process gets, its URLs without their userinfo (redactURLs), and is left
// out when the process does not get it. Every other name keeps the sent
// value: the host's OTEL_* variables and Config.Env are overlaid on the
// process's environment too, and may carry a collector's API key or a
// database password that the deployer never sent.
func listedEnv(sent map[string]string, process, derived []string) map[string]string {
	if len(sent) == 0 {
		return sent
	}
	isDerived := make(map[string]bool, len(derived))
	for _, k := range derived {
		isDerived[k] = true
	}
	got := make(map[string]string, len(derived))
	for _, kv := range process {
		if k, v, ok := strings.Cut(kv, "="); ok && isDerived[k] {
			got[k] = v
		}
	}
	out := make(map[string]string, len(sent))
	for k, v := range sent {
		if !isDerived[k] {
			out[k] = v
		} else if v, ok := got[k]; ok {
			out[k] = redactURLs(v)
		}
	}
	return out
}

// redacted stands for a URL's userinfo in what Status lists.
const redacted = "xxxxx"

// redactURLs replaces the userinfo of each URL in v, a URL or a
// comma-separated list of URLs or name=URL pairs (GATEWAY_URL,
// FUNCTION_URLS), with redacted: Config.Env may set a derived name to a URL
// with a user and password, which faas-cli describe would print. A value
// with an @ anywhere but in the userinfo of a scheme://host URL is replaced
// whole: a password may hold a comma (which splits the list), a slash
// (which ends the host) or lack the scheme, and no part of it may show.
func redactURLs(v string) string {
	parts := strings.Split(v, ",")
	for i, p := range parts {
		name, raw, ok := strings.Cut(p, "=")
		if !ok || strings.Contains(name, "://") {
			name, raw = "", p
		} else {
			name += "="
		}
		if !strings.Contains(raw, "@") {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.User == nil || u.Scheme == "" || u.Host == "" {
			return redacted
		}
		u.User = url.User(redacted)
		if parts[i] = name + u.String(); strings.Count(parts[i], "@") != 1 {
			return redacted
		}
	}
	return strings.Join(parts, ",")
}

// replicas validates spec's name and returns its replica count: the
// scale-min label, 1 without it.
func (s *Store) replicas(spec types.FunctionDeployment) (int, error) {
	if !serviceName.MatchString(spec.Service) {
		return 0, invalid("service name %q must be lower-case letters, digits and '-' (at most 63)", spec.Service)
	}
	if spec.Labels == nil {
		return 1, nil
	}
	v, ok := (*spec.Labels)[scaleMinLabel]
	if !ok {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > s.cfg.MaxReplicas {
		return 0, invalid("label %s must be an integer from 0 to %d", scaleMinLabel, s.cfg.MaxReplicas)
	}
	return n, nil
}

// take removes name from the map and returns it (nil when absent).
func (s *Store) take(name string) *function {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.fns[name]
	delete(s.fns, name)
	return fn
}

func (s *Store) get(name string) *function {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fns[name]
}

// Remove stops a function's replicas and forgets it: once its processes are
// gone, its logs and its state folder (mounted secrets) go too, so a later
// deploy of the same name starts clean, as on faasd where the container and
// its log stream go with it. fault.NotFound when it is not deployed.
func (s *Store) Remove(name string) error {
	s.ops.Lock()
	defer s.ops.Unlock()
	if s.take(name) == nil {
		return notFound(name)
	}
	err := s.cfg.Supervisor.Remove(name)
	s.cfg.Logs.Forget(name)
	return errors.Join(err, s.cfg.Secrets.Unmount(name))
}

// Scale sets a deployed function's replica count and returns once surplus
// replicas are gone (new ones start in the background). A count above
// MaxReplicas is clamped to it, as OpenFaaS CE clamps scale requests to its
// maximum of 5; 0 is allowed (the gateway wakes the function on its next
// call). Errors: fault.NotFound when it is not deployed.
func (s *Store) Scale(name string, replicas uint64) error {
	replicas = min(replicas, uint64(s.cfg.MaxReplicas))
	s.ops.Lock()
	defer s.ops.Unlock()
	if s.get(name) == nil {
		return notFound(name)
	}
	return s.cfg.Supervisor.Scale(name, int(replicas))
}

// Wake is the gateway's scale from zero: name, deployed with no replica, is
// scaled to replicas (clamped as Scale clamps) in the background, and Wake
// returns at once. The caller waits for a replica under its call's own
// context: ops may be held for minutes by a redeploy (replaceWait) or a
// drain, which a call must not wait for beyond its timeout. Under ops it
// checks again that name is deployed and has no replica, so a wake that
// waited does not undo a scale or a deploy made meanwhile; one wake per
// function runs at a time.
func (s *Store) Wake(name string, replicas uint64) {
	replicas = min(replicas, uint64(s.cfg.MaxReplicas))
	s.mu.Lock()
	if s.waking[name] {
		s.mu.Unlock()
		return
	}
	s.waking[name] = true
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.waking, name)
			s.mu.Unlock()
		}()
		s.ops.Lock()
		defer s.ops.Unlock()
		if s.get(name) == nil {
			return
		}
		if n, _ := s.cfg.Supervisor.Count(name); n != 0 {
			return
		}
		_ = s.cfg.Supervisor.Scale(name, int(replicas)) // closed meanwhile: the call's 503
	}()
}

// WaitDeployed returns nil once name is deployed, at once when it is, or
// ctx's error when ctx ends first: the async queue's replay waits with it
// for a function deployed after the start.
func (s *Store) WaitDeployed(ctx context.Context, name string) error {
	for {
		s.mu.Lock()
		ok, deployed := s.fns[name] != nil, s.deployed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-deployed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Exists reports whether name is deployed.
func (s *Store) Exists(name string) bool { return s.get(name) != nil }

// Invoked counts one invocation of name; false when it is not deployed.
func (s *Store) Invoked(name string) bool {
	fn := s.get(name)
	if fn == nil {
		return false
	}
	fn.invoked.Add(1)
	return true
}

// Status describes a deployed function as faas-provider's FunctionStatus;
// fault.NotFound when it is not deployed.
func (s *Store) Status(name string) (types.FunctionStatus, error) {
	fn := s.get(name)
	if fn == nil {
		return types.FunctionStatus{}, notFound(name)
	}
	return s.status(fn), nil
}

// List describes every deployed function, sorted by name.
func (s *Store) List() []types.FunctionStatus {
	s.mu.Lock()
	fns := make([]*function, 0, len(s.fns))
	for _, name := range slices.Sorted(maps.Keys(s.fns)) {
		fns = append(fns, s.fns[name])
	}
	s.mu.Unlock()
	out := make([]types.FunctionStatus, 0, len(fns))
	for _, fn := range fns {
		out = append(out, s.status(fn))
	}
	return out
}

func (s *Store) status(fn *function) types.FunctionStatus {
	sp := fn.spec
	replicas, available := s.cfg.Supervisor.Count(sp.Service)
	return types.FunctionStatus{
		Name: sp.Service, Image: sp.Image, Namespace: sp.Namespace, EnvProcess: sp.EnvProcess, EnvVars: sp.EnvVars,
		Constraints: sp.Constraints, Secrets: sp.Secrets, Labels: sp.Labels, Annotations: sp.Annotations,
		Limits: sp.Limits, Requests: sp.Requests, ReadOnlyRootFilesystem: sp.ReadOnlyRootFilesystem,
		InvocationCount: float64(fn.invoked.Load()), Replicas: uint64(replicas),
		AvailableReplicas: uint64(available), CreatedAt: fn.created,
	}
}
