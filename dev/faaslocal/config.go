package faaslocal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Config is what the runtime runs and where. Zero values get the defaults
// documented per field; Validate reports every problem at once.
type Config struct {
	// Root is the module root: processes run there, and relative paths are
	// resolved against it (default ".").
	Root string
	// StackFile is the stack file, relative to Root unless absolute (default stack.yml).
	StackFile string
	// KongFile is the edge's Kong declarative config, relative to Root unless
	// absolute; empty disables the edge.
	KongFile string
	// StateDir holds the secrets, each function's mounted secrets and the
	// async journal (default Root/.local). Start takes its lock (LockState)
	// unless StateLock holds it already; a runtime whose state another
	// process holds does not start.
	StateDir string
	// StateLock, when set, is StateDir's lock, which the caller took before
	// writing into the state (cmd/faas-local: the development secrets, the
	// binaries) and releases after Close; nil: Start takes it, Close releases it.
	StateLock *StateLock
	// GatewayAddr is the gateway API's listen address; it must be loopback
	// (default 127.0.0.1:8080; port 0 picks a free port).
	GatewayAddr string
	// EdgeAddr is the edge's listen address; it must be loopback (default 127.0.0.1:8000).
	EdgeAddr string
	// Functions are the stack.yml functions deployed at Start.
	Functions []string
	// Binary is the multi-call binary (cmd/shop-functions) that serves the
	// stack's functions. Empty: only deployments with an envProcess
	// (fprocess) run, and Functions must be empty.
	Binary string
	// AllowExec lets a deployment that is not a function of Binary run its
	// envProcess (fprocess) as a shell command (sh -c), as tests deploying
	// ad-hoc functions need. Without it such a deployment is refused with
	// 400: anyone holding the gateway's credentials could otherwise run any
	// command as the developer, next to every secret.
	AllowExec bool
	// GatewayOnly sends every call between functions through the gateway, as
	// on faasd: no function gets a SERVICE_ADDR and no process gets
	// FUNCTION_URLS. Otherwise (the default, on Linux) each function of
	// Binary gets a loopback port its replicas share, and functions and
	// connectors call each other there directly, as on Kubernetes with
	// FUNCTION_URL_TEMPLATE, falling back to the gateway when the
	// connection is refused (no replica running). Other systems always run
	// as GatewayOnly.
	GatewayOnly bool
	// CallbackAllow lists the host:port targets an async call's
	// X-Callback-Url may name besides the gateway's own /function/* on
	// loopback, which is always allowed; any other callback is refused with
	// 400. The OpenFaaS CE queue-worker posts to any URL.
	CallbackAllow []string
	// AsyncInflight is how many /async-function calls are invoked at once;
	// the others wait their turn in the journal (default 1, as faasd runs
	// its queue-worker with max_inflight=1).
	AsyncInflight int
	// Connectors are the connector programs to supervise, already built.
	Connectors []Connector
	// Env overrides every function's and connector's environment (tests point
	// database URLs at their own databases).
	Env map[string]string
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
	// MaxReplicas caps scale requests (clamped) and scale-min labels
	// (refused above it); default 5, OpenFaaS CE's maximum.
	MaxReplicas int
	// Log receives the runtime's own diagnostics (default slog.Default()).
	Log *slog.Logger
	// Getenv is the environment for ${VAR} substitution in stack.yml and for
	// the host variables passed to processes (PATH, HOME, ...); default
	// os.Getenv. SHOP_ENV is always development.
	Getenv func(string) string
	// Environ lists the host environment (KEY=value) whose OTEL_* variables
	// every process inherits (see TelemetryEnv); default os.Environ.
	Environ func() []string
	// OTLPEndpoint, when set, points every function, connector and the edge
	// at this OTLP/HTTP collector (e.g. http://127.0.0.1:4318 for `make
	// jaeger`), over any OTEL_EXPORTER_OTLP_* endpoint of the host.
	OTLPEndpoint string
}

// Connector is a built connector program (connectors/<name>) that the
// runtime supervises like a one-replica function.
type Connector struct {
	// Name names its replica and its logs.
	Name string
	// Path is its executable.
	Path string
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
		c.MaxReplicas = 5
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Environ == nil {
		c.Environ = os.Environ
	}
}

// Validate reports every configuration problem, joined.
func (c *Config) Validate() error {
	var errs []error
	for _, a := range []struct{ name, addr string }{{"gateway address", c.GatewayAddr}, {"edge address", c.EdgeAddr}} {
		if err := CheckLoopback(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.name, err))
		}
	}
	if len(c.Functions) > 0 && c.Binary == "" {
		errs = append(errs, errors.New("functions of the stack need the multi-call binary (Binary)"))
	}
	for _, hp := range c.CallbackAllow {
		if err := checkHostPort(hp); err != nil {
			errs = append(errs, fmt.Errorf("callback target: %w", err))
		}
	}
	for _, cn := range c.Connectors {
		if cn.Name == "" || cn.Path == "" {
			errs = append(errs, fmt.Errorf("connector %q needs a name and a path", cn.Name))
		}
	}
	return errors.Join(errs...)
}

// checkHostPort accepts host:port with a host and a numeric port.
func checkHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not host:port", hp)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: bad port", hp)
	}
	return nil
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
