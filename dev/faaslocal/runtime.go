// Package faaslocal is the local stand-in for faasd: it serves the OpenFaaS
// gateway API on a loopback listener, runs every function of stack.yml as
// replica processes of the multi-call binary cmd/shop-functions, supervises
// the connectors, and serves the public routes of gateway/kong.yml through
// the local edge.
//
// This package only wires the pieces, each in a package of its own:
//
//	provider    the gateway API, one handler per endpoint (faas-provider's FaaSHandlers)
//	functions   the function store: what is deployed, and the rules of deploy, update, scale, remove
//	supervisor  replica processes: ports, health, restarts, round-robin choice, graceful stop
//	secrets     the secret store and each function's mounted secrets
//	logstore    every function's and connector's recent output, with follow
//	queue       /async-function calls: the journal on disk and the worker that runs them
//	edge        the Kong stand-in, one type per plugin
//
// Start-up work that is the program's business (building the binaries,
// writing development secrets, seeding) lives in cmd/faas-local; tests start
// a runtime through runtimetest.
//
// Nothing it starts binds a non-loopback address, and every process it starts
// runs in its own process group so that Close leaves no child behind.
package faaslocal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/shopfaas/shop/dev/faaslocal/edge"
	"github.com/shopfaas/shop/dev/faaslocal/functions"
	"github.com/shopfaas/shop/dev/faaslocal/logstore"
	"github.com/shopfaas/shop/dev/faaslocal/provider"
	"github.com/shopfaas/shop/dev/faaslocal/queue"
	"github.com/shopfaas/shop/dev/faaslocal/secrets"
	"github.com/shopfaas/shop/dev/faaslocal/supervisor"
	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/schedule"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Runtime is a running local OpenFaaS. Create it with Start; Close stops it.
type Runtime struct {
	cfg Config
	out *lineWriter

	services   *services // the functions' shared ports, nil when every call goes through the gateway
	secrets    *secrets.Store
	logs       *logstore.Store
	replicas   *supervisor.Supervisor // function replicas
	connectors *supervisor.Supervisor // connector processes
	launcher   *launcher
	functions  *functions.Store
	queue      *queue.Worker
	edge       *edge.Edge
	edgeSpans  *sdktrace.TracerProvider // the edge's exporter, nil without Config.OTLPEndpoint
	// edgeFailures counts and logs the edge's failed span exports
	// (shop_telemetry_export_failures_total on the edge's /metrics).
	edgeFailures *telemetry.ExportFailures
	gateway      *server
	edgeServer   *server
	creds        provider.Credentials // the gateway API's basic auth
	callbacks    provider.Callbacks   // where async answers may be posted

	connectorMetrics connectorMetrics // where each connector serves /metrics

	stateLock *StateLock // the state directory's lock when Start took it, released last by Close

	closeOnce sync.Once
	closeErr  error
}

// Start locks the state directory (see Config.StateLock) and opens it, the
// listeners and the stores, replays unfinished async calls (before the
// gateway serves: a call accepted since takes its turn after them), deploys
// Config.Functions and starts the connectors, and returns without waiting
// for replicas (see WaitReady). On error everything started so far is
// stopped.
func Start(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rt := &Runtime{cfg: cfg, out: &lineWriter{w: cfg.Stdout}}
	if err := rt.start(ctx); err != nil {
		return nil, errors.Join(err, rt.Close())
	}
	return rt, nil
}

func (rt *Runtime) start(ctx context.Context) error {
	if err := rt.lockState(); err != nil {
		return err
	}
	deployments, err := loadStack(rt.path(rt.cfg.StackFile), rt.cfg.Getenv, rt.cfg.Functions)
	if err != nil {
		return err
	}
	known, err := listKnown(ctx, rt.cfg.Binary)
	if err != nil {
		return err
	}
	if !rt.cfg.GatewayOnly {
		if rt.services, err = reserveServices(known); err != nil {
			return err
		}
	}
	gatewayLn, err := listen("gateway", rt.cfg.GatewayAddr)
	if err != nil {
		return err
	}
	if err := rt.open(known, "http://"+gatewayLn.Addr().String()); err != nil {
		_ = gatewayLn.Close()
		return err
	}
	// The replay reads the journal before the gateway takes a new async
	// call, which then waits behind its function's replayed calls
	// (queue.Worker.Replay); they run once the function is ready.
	if err := rt.queue.Replay(); err != nil {
		rt.cfg.Log.Warn("async journal", "err", err.Error())
	}
	rt.serveGateway(gatewayLn)
	if rt.cfg.KongFile != "" {
		if err := rt.startEdge(ctx); err != nil {
			return err
		}
	}
	rt.out.printf("starting %d functions…\n", len(deployments))
	for _, spec := range deployments {
		if err := rt.functions.Deploy(spec); err != nil {
			return fmt.Errorf("deploy %s: %w", spec.Service, err)
		}
	}
	for _, c := range rt.cfg.Connectors {
		if err := rt.startConnector(c); err != nil {
			return err
		}
	}
	return nil
}

// lockState takes the state directory's lock before anything reads or
// writes there, or checks that Config.StateLock is that lock.
func (rt *Runtime) lockState() error {
	if l := rt.cfg.StateLock; l != nil {
		dir, err := filepath.Abs(rt.cfg.StateDir)
		if err != nil {
			return err
		}
		if l.Dir() != dir {
			return fmt.Errorf("the state lock given is %s's, not the state directory %s's", l.Dir(), dir)
		}
		return nil
	}
	var err error
	rt.stateLock, err = LockState(rt.cfg.StateDir)
	return err
}

// open creates the stores, the supervisors and the async worker;
// gatewayURL is what processes get as GATEWAY_URL.
func (rt *Runtime) open(known map[string]bool, gatewayURL string) error {
	cfg := rt.cfg
	var err error
	// The connectors' environment file, read once for all of them (Config.Env
	// goes over it, in connectorEnv); a runtime without connectors reads none.
	var fileEnv map[string]string
	if len(cfg.Connectors) > 0 {
		if fileEnv, err = serviceEnv(cfg.Root, nil); err != nil {
			return fmt.Errorf("connectors: %w", err)
		}
	}
	if rt.secrets, err = secrets.Open(cfg.StateDir); err != nil {
		return err
	}
	if rt.creds, err = readCredentials(rt.secrets); err != nil {
		return err
	}
	journal, err := queue.OpenJournal(filepath.Join(cfg.StateDir, "async"))
	if err != nil {
		return err
	}
	rt.logs = logstore.New(cfg.LogLines, provider.Namespace)
	rt.replicas = supervisor.New(supervisor.Config{Grace: cfg.StopGrace, Output: rt.output})
	rt.connectors = supervisor.New(supervisor.Config{Grace: cfg.StopGrace, Output: func(name, instance, line string) {
		rt.connectorMetrics.observe(name, line)
		rt.output(name, instance, line)
	}})
	rt.launcher = &launcher{root: cfg.Root, binary: cfg.Binary, known: known, host: hostVars(cfg.Getenv), file: fileEnv,
		telemetry: TelemetryEnv(cfg.Environ(), cfg.OTLPEndpoint), overrides: cfg.Env, gatewayURL: gatewayURL,
		allowExec: cfg.AllowExec, services: rt.services}
	rt.functions = functions.New(functions.Config{Namespace: provider.Namespace, MaxReplicas: cfg.MaxReplicas,
		Supervisor: rt.replicas, Secrets: rt.secrets, Launcher: rt.launcher, Logs: rt.logs})
	rt.callbacks = provider.Callbacks{Gateway: strings.TrimPrefix(gatewayURL, "http://"), Allow: cfg.CallbackAllow}
	rt.queue = queue.NewWorker(queue.Config{Journal: journal, Functions: rt.functions, Replicas: rt.replicas,
		Wake: provider.Waker{Functions: rt.functions}, Timeouts: provider.Timeouts{Functions: rt.functions}, ResolveWait: cfg.ResolveWait, Log: cfg.Log, CallbackAllowed: rt.callbacks.Allowed,
		MaxInflight: cfg.AsyncInflight})
	return nil
}

// ListenError is Start's error when the gateway or the edge cannot listen
// on its address (Config.GatewayAddr, Config.EdgeAddr), most often a port
// another program holds: it names the listener and the address, so that a
// caller can say which setting moves it (cmd/faas-local names its flag).
type ListenError struct {
	// Listener is "gateway" or "edge".
	Listener string
	// Addr is the address it could not listen on.
	Addr string
	// Err is net.Listen's error.
	Err error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("the %s cannot listen on %s: %v", e.Listener, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// listen listens on addr for listener ("gateway", "edge"); its error is a
// *ListenError.
func listen(listener, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Listener: listener, Addr: addr, Err: err}
	}
	return ln, nil
}

// serveGateway serves the gateway API (the provider's handlers) on ln.
func (rt *Runtime) serveGateway(ln net.Listener) {
	api := provider.New(provider.Deps{Functions: rt.functions, Secrets: rt.secrets, Logs: rt.logs,
		Replicas: rt.replicas, Queue: rt.queue, ResolveWait: rt.cfg.ResolveWait, Log: rt.cfg.Log,
		Callbacks: rt.callbacks})
	rt.gateway = serve(ln, provider.Guard(provider.RequireBasicAuth(rt.creds, rt.metricsRoutes(api.Router()))), rt.cfg.Log)
}

// Names of the secrets holding the gateway API's credentials, as on faasd
// (/var/lib/faasd/secrets/basic-auth-user and basic-auth-password).
const (
	secretBasicAuthUser     = "basic-auth-user"
	secretBasicAuthPassword = "basic-auth-password"
)

// readCredentials reads the gateway API's credentials from the secret store
// (surrounding white space trimmed, as faas-provider reads them); a missing
// or empty one stops the runtime: the API is never served without them.
func readCredentials(s *secrets.Store) (provider.Credentials, error) {
	var c provider.Credentials
	var errs []error
	for _, f := range []struct {
		name string
		dst  *string
	}{{secretBasicAuthUser, &c.User}, {secretBasicAuthPassword, &c.Password}} {
		b, err := s.Read(f.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("gateway credentials: secret %s in %s: %w (cmd/faas-local creates it)", f.name, s.Dir(), err))
			continue
		}
		*f.dst = strings.TrimSpace(string(b))
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// startConnector supervises c like a one-replica function: restarted when it
// exits, stopped by Close, its output in the log store under its name.
func (rt *Runtime) startConnector(c Connector) error {
	rt.logs.Open(c.Name)
	return rt.connectors.Start(c.Name, rt.launcher.connector(c, rt.secrets.Dir()), 1)
}

// output records one output line of a process: into the log store and,
// unless Quiet, onto Stdout prefixed with its name.
func (rt *Runtime) output(name, instance, line string) {
	rt.logs.Append(name, instance, line)
	if !rt.cfg.Quiet {
		rt.out.printf("%s | %s\n", name, line)
	}
}

// Close stops everything in order and returns what failed, joined:
//
//  1. the edge stops listening (no new public traffic);
//  2. the connectors stop, while the gateway still serves their last calls;
//  3. async calls get a few seconds to finish (unfinished ones stay in the
//     journal) while the gateway still serves: their callbacks may go to its
//     own /function/*; new async calls are answered 503 meanwhile;
//  4. the gateway API stops listening;
//  5. the function replicas stop (SIGTERM, SIGKILL after StopGrace);
//  6. the edge's Redis connections close and its last spans are exported;
//  7. the functions' reserved ports are released;
//  8. the state directory's lock is released, when Start took it.
//
// Close is safe on a runtime that failed to start and returns the same
// result when called again.
func (rt *Runtime) Close() error {
	rt.closeOnce.Do(func() {
		var errs []error
		add := func(what string, err error) {
			if err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", what, err))
			}
		}
		add("edge listener", rt.edgeServer.shutdown())
		if rt.connectors != nil {
			add("connectors", rt.connectors.Close())
		}
		if rt.queue != nil {
			rt.queue.Stop()
		}
		add("gateway listener", rt.gateway.shutdown())
		if rt.replicas != nil {
			add("functions", rt.replicas.Close())
		}
		if rt.edge != nil {
			add("edge", rt.edge.Close())
		}
		if rt.edgeSpans != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			add("edge spans", rt.edgeSpans.Shutdown(sctx))
			cancel()
		}
		rt.edgeFailures.Unlogged() // after the last flush; nil-safe
		add("function ports", rt.services.Close())
		add("state lock", rt.stateLock.Close()) // last: nothing of this runtime writes there any more
		rt.closeErr = errors.Join(errs...)
	})
	return rt.closeErr
}

func (rt *Runtime) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(rt.cfg.Root, p)
}

// SecretsDir is where the runtime keeps every secret, one 0600 file each.
func (rt *Runtime) SecretsDir() string { return rt.secrets.Dir() }

// StateDir is the runtime's state directory.
func (rt *Runtime) StateDir() string { return rt.cfg.StateDir }

// Secret reads a secret's value.
func (rt *Runtime) Secret(name string) (string, error) {
	b, err := rt.secrets.Read(name)
	return string(b), err
}

// GatewayCredentials are the gateway API's basic-auth credentials, which
// every call under /system/ needs.
func (rt *Runtime) GatewayCredentials() provider.Credentials { return rt.creds }

// GatewayURL is the gateway API's base URL, e.g. http://127.0.0.1:8080.
func (rt *Runtime) GatewayURL() string { return "http://" + rt.gateway.addr() }

// EdgeURL is the edge's base URL, or "" when the edge is disabled.
func (rt *Runtime) EdgeURL() string {
	if rt.edgeServer == nil {
		return ""
	}
	return "http://" + rt.edgeServer.addr()
}

// Known lists the functions the multi-call binary serves.
func (rt *Runtime) Known() []string { return rt.launcher.Known() }

// WaitReady waits until every named function has all its replicas available;
// a function that is not deployed is an error.
func (rt *Runtime) WaitReady(ctx context.Context, names ...string) error {
	return rt.replicas.WaitReady(ctx, names...)
}

// WaitSubscribed waits, when a connector named rabbitmq runs, until it
// consumes the queue of every deployed function with a topic annotation
// (broker.WaitSubscribed): from then on every event published reaches each
// of them. WaitReady alone is not enough for a caller that publishes events
// at once: the connector binds the functions' queues one after another after
// it starts, and an event published before a queue is bound never reaches it.
func (rt *Runtime) WaitSubscribed(ctx context.Context) error {
	if !slices.ContainsFunc(rt.cfg.Connectors, func(c Connector) bool { return c.Name == "rabbitmq" }) {
		return nil
	}
	env := rt.launcher.connectorEnv(rt.secrets.Dir())
	var fns []string
	for _, f := range rt.functions.List() {
		if f.Annotations != nil && strings.TrimSpace((*f.Annotations)[schedule.TopicAnnotation]) != "" {
			fns = append(fns, f.Name)
		}
	}
	return broker.WaitSubscribed(ctx, cmp.Or(env["RABBITMQ_URL"], broker.DefaultURL),
		broker.Names{Prefix: env["EXCHANGE_PREFIX"]}, fns)
}

// Replicas describes the named function's replicas (nil when not deployed).
func (rt *Runtime) Replicas(name string) []supervisor.ReplicaInfo { return rt.replicas.Replicas(name) }

// ConnectorReplicas describes the running process of connector name (tests
// use it to kill a connector mid-work and watch it restart).
func (rt *Runtime) ConnectorReplicas(name string) []supervisor.ReplicaInfo {
	return rt.connectors.Replicas(name)
}

// KillReplica SIGKILLs the process group of replica rep of function name
// (rep as Replicas listed it), as a crash would: the replica restarts. It
// reports whether the signal was sent, which it is only while rep's process
// is still the replica's current one and unreaped, never to a group id that
// may have been freed since the listing, and never once the replica's stop
// (scale-down, redeploy, removal, Close) has begun, so a draining replica
// finishes its calls (supervisor.Supervisor.Kill).
func (rt *Runtime) KillReplica(name string, rep supervisor.ReplicaInfo) (bool, error) {
	return rt.replicas.Kill(name, rep)
}

// KillConnector is KillReplica for connector name's process (rep as
// ConnectorReplicas listed it).
func (rt *Runtime) KillConnector(name string, rep supervisor.ReplicaInfo) (bool, error) {
	return rt.connectors.Kill(name, rep)
}

// server is one HTTP listener of the runtime.
type server struct {
	ln      net.Listener
	srv     *http.Server
	closing atomic.Bool // shutdown has begun
}

// Read timeouts of the gateway and the edge: a client has readHeaderTimeout
// to send its headers and readTimeout to send the whole request, so a
// client trickling a body a byte at a time cannot hold a connection (and a
// function's body read) open; the bodies these listeners take are small
// (the edge caps them at 64 KiB, the system API's are JSON documents).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
)

// serve serves h on ln until shutdown.
func serve(ln net.Listener, h http.Handler, log *slog.Logger) *server {
	return serveWith(ln, h, log, readHeaderTimeout, readTimeout)
}

// serveWith is serve with explicit read timeouts (tests shorten them).
func serveWith(ln net.Listener, h http.Handler, log *slog.Logger, headerTimeout, bodyTimeout time.Duration) *server {
	s := &server{ln: ln, srv: &http.Server{Handler: h,
		ReadHeaderTimeout: headerTimeout, ReadTimeout: bodyTimeout, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("server stopped", "addr", ln.Addr().String(), "err", err.Error())
		}
	}()
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// inProcess is the server's handler for a caller in this process (the
// edge): the same handler, refusing a call once shutdown has begun, as the
// closed listener would (http.ErrAbortHandler: the caller's transport
// reports an error before any answer, which the edge answers with 502).
func (s *server) inProcess() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.closing.Load() {
			panic(http.ErrAbortHandler)
		}
		s.srv.Handler.ServeHTTP(w, r)
	})
}

// shutdown stops accepting, gives requests in flight two seconds, then
// closes what is left (followers of /system/logs never finish on their own).
func (s *server) shutdown() error {
	if s == nil {
		return nil
	}
	s.closing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.srv.Close()
	}
	return err
}

// lineWriter writes whole lines to one writer from many goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}
