// Package faaslocal is the local stand-in for faasd: it serves the OpenFaaS
// gateway API (faas-provider's types and handlers) on a loopback listener,
// runs every function of stack.yml as replica processes of the multi-call
// binary cmd/shop-functions, supervises connectors, and serves the public
// routes of gateway/kong.yml through the local edge (package edge).
//
// Nothing it starts binds a non-loopback address, and every process it starts
// runs in its own process group so that Close leaves no child behind.
package faaslocal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/openfaas/go-sdk/stack"

	"github.com/shopfaas/shop/dev/faaslocal/edge"
	"github.com/shopfaas/shop/dev/stackfile"
)

// Config is what the runtime runs and where. Zero values get the defaults
// documented per field; Validate reports every problem at once.
type Config struct {
	// Root is the module root holding stack.yml, env/ and connectors/ (default ".").
	Root string
	// StackFile is the stack file, relative to Root unless absolute (default stack.yml).
	StackFile string
	// KongFile is the edge's Kong declarative config, relative to Root unless
	// absolute; empty disables the edge.
	KongFile string
	// StateDir holds binaries, secrets and per-function secret directories
	// (default Root/.local).
	StateDir string
	// GatewayAddr is the gateway API's listen address; it must be loopback
	// (default 127.0.0.1:8080; port 0 picks a free port).
	GatewayAddr string
	// EdgeAddr is the edge's listen address; it must be loopback (default 127.0.0.1:8000).
	EdgeAddr string
	// Functions are the stack.yml functions deployed at Start.
	Functions []string
	// Connectors are connectors/<name> main packages to build and supervise;
	// names without a directory are skipped with a notice.
	Connectors []string
	// Env overrides every function's and connector's environment (tests point
	// database URLs at their own databases).
	Env map[string]string
	// Binary is the multi-call binary (default StateDir/bin/shop-functions).
	// When it does not exist and Build is false, only fprocess deployments work.
	Binary string
	// Build builds Binary (go build ./cmd/shop-functions) and the connectors at Start.
	Build bool
	// Stdout receives progress and, unless Quiet, every replica's output
	// prefixed with its function name (default os.Stdout).
	Stdout io.Writer
	// Quiet stops echoing replica output to Stdout; /system/logs still has it.
	Quiet bool
	// StopGrace is how long a stopped process gets between SIGTERM and SIGKILL (default 10s).
	StopGrace time.Duration
	// ResolveWait is how long an invocation waits for an available replica
	// before answering 503 (default 5s).
	ResolveWait time.Duration
	// LogLines is the per-function log ring size (default 2000).
	LogLines int
	// MaxReplicas caps scale requests (default 20).
	MaxReplicas int
	// Log receives the runtime's own diagnostics (default slog.Default()).
	Log *slog.Logger
	// Getenv is the environment for ${VAR} substitution in stack.yml and for
	// the host variables passed to processes (PATH, HOME, ...); default os.Getenv.
	// SHOP_ENV is always development.
	Getenv func(string) string
}

func (c *Config) setDefaults() {
	if c.Root == "" {
		c.Root = "."
	}
	if c.StackFile == "" {
		c.StackFile = "stack.yml"
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join(c.Root, ".local")
	}
	if c.GatewayAddr == "" {
		c.GatewayAddr = "127.0.0.1:8080"
	}
	if c.EdgeAddr == "" {
		c.EdgeAddr = "127.0.0.1:8000"
	}
	if c.Binary == "" {
		c.Binary = filepath.Join(c.StateDir, "bin", "shop-functions")
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.ResolveWait <= 0 {
		c.ResolveWait = 5 * time.Second
	}
	if c.LogLines <= 0 {
		c.LogLines = 2000
	}
	if c.MaxReplicas <= 0 {
		c.MaxReplicas = 20
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
}

// Validate reports every configuration problem, joined.
func (c *Config) Validate() error {
	var errs []error
	for name, addr := range map[string]string{"gateway address": c.GatewayAddr, "edge address": c.EdgeAddr} {
		if err := CheckLoopback(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// CheckLoopback accepts host:port addresses whose host is a loopback IP or
// localhost: the runtime never listens on another interface.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: bad port", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: only loopback addresses are allowed", addr)
	}
	return nil
}

// hostEnv are the host variables every process inherits: enough for sh, go
// and the toolchain, nothing that would leak the developer's credentials.
var hostEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ", "GOCOVERDIR", "GOCACHE", "GOPATH", "GOMODCACHE"}

// Runtime is a running local OpenFaaS. Create it with Start; Close stops it.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	stack   *stack.Services
	known   map[string]bool
	sup     *supervisor
	ctx     context.Context
	cancel  context.CancelFunc
	gateway net.Listener
	edgeLn  net.Listener
	edge    *edge.Edge
	servers []*http.Server
	async   sync.WaitGroup

	opMu sync.Mutex // serialises deploy, update, delete, scale

	mu         sync.Mutex
	fns        map[string]*function
	logs       map[string]*logRing
	changed    chan struct{}
	connectors []*replica
	out        sync.Mutex // one writer line at a time on Stdout
}

// function is one deployed function and its replicas.
type function struct {
	spec     types.FunctionDeployment
	created  time.Time
	proc     procSpec
	replicas []*replica
	seq      int
	rr       uint64
	invoked  uint64
}

// Start prepares the state directory and secrets, builds what Config asks,
// opens the listeners, deploys Config.Functions and the connectors, and
// returns without waiting for replicas (see WaitReady). On error everything
// started so far is stopped.
func Start(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rt := &Runtime{cfg: cfg, log: cfg.Log, ctx: rctx, cancel: cancel, known: map[string]bool{},
		fns: map[string]*function{}, logs: map[string]*logRing{}, changed: make(chan struct{})}
	rt.sup = &supervisor{grace: cfg.StopGrace, sink: rt.line, onState: rt.notify,
		health: &http.Client{Timeout: time.Second}}
	if err := rt.start(ctx); err != nil {
		_ = rt.Close()
		return nil, err
	}
	return rt, nil
}

func (rt *Runtime) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(rt.cfg.Root, p)
}

func (rt *Runtime) getenv(k string) string {
	if k == "SHOP_ENV" {
		return "development"
	}
	return rt.cfg.Getenv(k)
}

func (rt *Runtime) start(ctx context.Context) error {
	for _, d := range []string{rt.binDir(), rt.SecretsDir(), filepath.Join(rt.cfg.StateDir, "functions")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	if err := rt.ensureDevSecrets(); err != nil {
		return err
	}
	s, err := stackfile.LoadEnv(rt.path(rt.cfg.StackFile), rt.getenv)
	if err != nil {
		return err
	}
	rt.stack = s
	for _, name := range rt.cfg.Functions {
		if _, ok := s.Functions[name]; !ok {
			return fmt.Errorf("function %q is not in %s", name, rt.cfg.StackFile)
		}
	}
	if rt.cfg.Build {
		if err := rt.build(ctx, "./cmd/shop-functions", rt.cfg.Binary, "functions"); err != nil {
			return err
		}
	}
	if err := rt.loadKnown(ctx); err != nil {
		return err
	}
	connectors, err := rt.prepareConnectors()
	if err != nil {
		return err
	}

	rt.gateway, err = net.Listen("tcp", rt.cfg.GatewayAddr)
	if err != nil {
		return fmt.Errorf("gateway listen: %w", err)
	}
	rt.serve(rt.gateway, rt.gatewayHandler())
	if rt.cfg.KongFile != "" {
		decl, err := edge.Load(rt.path(rt.cfg.KongFile))
		if err != nil {
			return err
		}
		h, err := edge.New(decl, edge.Options{
			Upstreams: map[string]string{"gateway:8080": rt.gateway.Addr().String(), "redis:6379": rt.redisAddr()},
			Log:       rt.log,
			Getenv:    rt.edgeEnv,
		})
		if err != nil {
			return err
		}
		rt.edge = h
		rt.edgeLn, err = net.Listen("tcp", rt.cfg.EdgeAddr)
		if err != nil {
			return fmt.Errorf("edge listen: %w", err)
		}
		rt.serve(rt.edgeLn, h)
	}

	rt.printf("starting %d functions…\n", len(rt.cfg.Functions))
	for _, name := range rt.cfg.Functions {
		spec, err := rt.stackDeployment(name)
		if err != nil {
			return err
		}
		if err := rt.deploy(spec, false); err != nil {
			return fmt.Errorf("deploy %s: %w", name, err)
		}
	}
	for _, c := range connectors {
		rt.startConnector(c)
	}
	rt.replayJournal()
	return nil
}

func (rt *Runtime) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(rt.log.Handler(), slog.LevelDebug)}
	rt.servers = append(rt.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			rt.log.Error("server stopped", "addr", ln.Addr().String(), "err", err.Error())
		}
	}()
}

func (rt *Runtime) binDir() string { return filepath.Join(rt.cfg.StateDir, "bin") }

// SecretsDir is where the runtime keeps every secret, one 0600 file each.
func (rt *Runtime) SecretsDir() string { return filepath.Join(rt.cfg.StateDir, "secrets") }

// StateDir is the runtime's state directory.
func (rt *Runtime) StateDir() string { return rt.cfg.StateDir }

// GatewayURL is the gateway API's base URL, e.g. http://127.0.0.1:8080.
func (rt *Runtime) GatewayURL() string { return "http://" + rt.gateway.Addr().String() }

// EdgeURL is the edge's base URL, or "" when the edge is disabled.
func (rt *Runtime) EdgeURL() string {
	if rt.edgeLn == nil {
		return ""
	}
	return "http://" + rt.edgeLn.Addr().String()
}

// Known lists the functions the multi-call binary serves.
func (rt *Runtime) Known() []string { return slices.Sorted(maps.Keys(rt.known)) }

func (rt *Runtime) printf(format string, args ...any) {
	rt.out.Lock()
	defer rt.out.Unlock()
	fmt.Fprintf(rt.cfg.Stdout, format, args...)
}

// line records one output line of a process: into its function's log ring
// and, unless quiet, onto Stdout prefixed with the function name.
func (rt *Runtime) line(fn, instance, text string) {
	rt.mu.Lock()
	ring := rt.logs[fn]
	rt.mu.Unlock()
	if ring != nil {
		ring.add(logMessage(fn, instance, text))
	}
	if !rt.cfg.Quiet {
		rt.printf("%s | %s\n", fn, text)
	}
}

// notify wakes everyone waiting for a replica to change state.
func (rt *Runtime) notify() {
	rt.mu.Lock()
	close(rt.changed)
	rt.changed = make(chan struct{})
	rt.mu.Unlock()
}

// build runs go build for pkg into out, showing progress.
func (rt *Runtime) build(ctx context.Context, pkg, out, what string) error {
	rt.printf("building %s… (go build -o %s %s)\n", what, out, pkg)
	start := time.Now()
	tmp := out + ".tmp" + strconv.Itoa(os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, pkg)
	cmd.Dir = rt.cfg.Root
	var stderr bytes.Buffer
	cmd.Stdout = rt.cfg.Stdout
	cmd.Stderr = io.MultiWriter(&stderr, rt.cfg.Stdout)
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("install %s: %w", out, err)
	}
	rt.printf("built %s in %s\n", what, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// loadKnown asks the multi-call binary which functions it serves.
func (rt *Runtime) loadKnown(ctx context.Context) error {
	if _, err := os.Stat(rt.cfg.Binary); err != nil {
		if len(rt.cfg.Functions) > 0 {
			return fmt.Errorf("multi-call binary %s: %w (start with Build)", rt.cfg.Binary, err)
		}
		return nil
	}
	out, err := exec.CommandContext(ctx, rt.cfg.Binary, "list").Output()
	if err != nil {
		return fmt.Errorf("%s list: %w", rt.cfg.Binary, err)
	}
	for _, n := range strings.Fields(string(out)) {
		rt.known[n] = true
	}
	return nil
}

// ensureDevSecrets creates the development secrets that are missing; existing
// ones (and so issued tokens) survive restarts.
func (rt *Runtime) ensureDevSecrets() error {
	random := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	defaults := []struct{ name, value string }{
		{"jwt-secret", random(48)},
		{"internal-token", random(32)},
		{"admin-email", "admin@example.com"},
		{"admin-password", "admin-dev-password"},
		// Empty on a developer machine: PostgreSQL trusts local connections,
		// no Meilisearch runs and no SMTP server needs a login. Functions
		// declare them for production.
		{"db-password", ""},
		{"meili-key", ""},
		{"smtp-password", ""},
	}
	for _, d := range defaults {
		p := filepath.Join(rt.SecretsDir(), d.name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.WriteFile(p, []byte(d.value), 0o600); err != nil {
			return fmt.Errorf("secret %s: %w", d.name, err)
		}
	}
	return nil
}

// redisAddr is the Redis the edge's rate-limiting counters use: the
// functions' REDIS_ADDR (Config.Env, then the host environment), else the
// local default.
func (rt *Runtime) redisAddr() string {
	if v := rt.cfg.Env["REDIS_ADDR"]; v != "" {
		return v
	}
	if v := rt.cfg.Getenv("REDIS_ADDR"); v != "" {
		return v
	}
	return "127.0.0.1:6379"
}

// edgeEnv is the edge's environment for {vault://env/NAME} references in
// the Kong file: SHOP_JWT_SECRET is the jwt-secret secret (what a production
// deploy exports to Kong), anything else comes from the host environment.
func (rt *Runtime) edgeEnv(name string) string {
	if name == "SHOP_JWT_SECRET" {
		v, _ := rt.Secret("jwt-secret")
		return strings.TrimSpace(v) // as the functions read it (internal/config)
	}
	return rt.cfg.Getenv(name)
}

// Secret reads a secret's value from the state directory.
func (rt *Runtime) Secret(name string) (string, error) {
	if !validSecretName(name) {
		return "", fmt.Errorf("invalid secret name %q", name)
	}
	b, err := os.ReadFile(filepath.Join(rt.SecretsDir(), name))
	return string(b), err
}

// stackDeployment turns a stack.yml function into the deployment faas-cli
// would send for it.
func (rt *Runtime) stackDeployment(name string) (types.FunctionDeployment, error) {
	fn := rt.stack.Functions[name]
	env, err := stackfile.Environment(filepath.Dir(rt.path(rt.cfg.StackFile)), fn)
	if err != nil {
		return types.FunctionDeployment{}, fmt.Errorf("%s: %w", name, err)
	}
	spec := types.FunctionDeployment{Service: name, Image: fn.Image, Namespace: Namespace, EnvProcess: fn.FProcess,
		EnvVars: env, Secrets: fn.Secrets, Labels: fn.Labels, Annotations: fn.Annotations}
	if fn.Limits != nil {
		spec.Limits = &types.FunctionResources{Memory: fn.Limits.Memory, CPU: fn.Limits.CPU}
	}
	if fn.Requests != nil {
		spec.Requests = &types.FunctionResources{Memory: fn.Requests.Memory, CPU: fn.Requests.CPU}
	}
	return spec, nil
}

// baseEnv is what every process gets before its own variables.
func (rt *Runtime) baseEnv() map[string]string {
	env := map[string]string{}
	for _, k := range hostEnv {
		if v := rt.cfg.Getenv(k); v != "" {
			env[k] = v
		}
	}
	return env
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

// WaitReady waits until every named function has all its replicas available.
func (rt *Runtime) WaitReady(ctx context.Context, names ...string) error {
	for {
		rt.mu.Lock()
		changed := rt.changed
		var pending []string
		for _, n := range names {
			fn := rt.fns[n]
			if fn == nil {
				rt.mu.Unlock()
				return fmt.Errorf("function %q is not deployed", n)
			}
			if availableCount(fn) < len(fn.replicas) {
				pending = append(pending, n)
			}
		}
		rt.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("functions not ready: %v: %w", pending, ctx.Err())
		}
	}
}

func availableCount(fn *function) int {
	n := 0
	for _, r := range fn.replicas {
		if r.available.Load() {
			n++
		}
	}
	return n
}

// Replicas describes the named function's replicas (nil when not deployed).
func (rt *Runtime) Replicas(name string) []ReplicaInfo {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	fn := rt.fns[name]
	if fn == nil {
		return nil
	}
	out := make([]ReplicaInfo, 0, len(fn.replicas))
	for _, r := range fn.replicas {
		out = append(out, r.info())
	}
	return out
}

// Close stops the listeners, waits for async invocations to finish, and stops
// every process the runtime started (SIGTERM, then SIGKILL after StopGrace).
func (rt *Runtime) Close() error {
	var errs []error
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range rt.servers {
		if err := s.Shutdown(sctx); err != nil {
			_ = s.Close() // followers of /system/logs keep connections busy
		}
	}
	asyncDone := make(chan struct{})
	go func() { rt.async.Wait(); close(asyncDone) }()
	select {
	case <-asyncDone:
	case <-time.After(5 * time.Second):
	}
	rt.cancel()
	<-asyncDone
	if rt.edge != nil {
		_ = rt.edge.Close()
	}
	rt.opMu.Lock()
	defer rt.opMu.Unlock()
	rt.mu.Lock()
	var all []*replica
	for _, fn := range rt.fns {
		all = append(all, fn.replicas...)
	}
	all = append(all, rt.connectors...)
	rt.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range all {
		wg.Go(r.stop)
	}
	wg.Wait()
	return errors.Join(errs...)
}
