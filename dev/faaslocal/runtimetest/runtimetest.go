// Package runtimetest starts the local OpenFaaS runtime inside a test: real
// function processes on loopback ports behind a real gateway and edge, a
// temporary state directory, and everything stopped in t.Cleanup.
//
//	rt := runtimetest.Start(t, runtimetest.Options{
//		Functions: []string{"register-user", "login-user"},
//		Env:       map[string]string{"USERS_DATABASE_URL": db.URL},
//	})
//	res, err := http.Post(rt.EdgeURL+"/api/v1/users", "application/json", body)
//
// Binaries (cmd/shop-functions, and echofn for ad-hoc functions) are built
// once per test process. A runtime that cannot start fails the test.
package runtimetest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal"
	"github.com/shopfaas/shop/dev/faaslocal/secrets"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/proctest"
)

// Options choose what the runtime runs.
type Options struct {
	// Functions are stack.yml functions to deploy; Start waits until each is available.
	Functions []string
	// Env overrides every function's environment (database URLs, REDIS_ADDR, ...).
	Env map[string]string
	// Connectors are connectors/<name> to build and supervise (none by default).
	Connectors []string
	// Verbose echoes every function's output to the test log.
	Verbose bool
	// ReadyTimeout bounds the wait for Functions (default 60s).
	ReadyTimeout time.Duration
	// StackFile is the stack file, module-relative (default stack.yml); the
	// bundled faasd-CE stack is stack.ce.yml.
	StackFile string
	// KongFile is the edge's Kong config, module-relative (default
	// gateway/kong.yml; gateway/kong.ce.yml for the bundled stack).
	KongFile string
	// OTLPEndpoint points every process and the edge at an OTLP/HTTP
	// receiver (faaslocal.Config.OTLPEndpoint), e.g. an otlpsink's URL.
	OTLPEndpoint string
	// AllowExec lets deployments run an envProcess (faaslocal.Config.AllowExec),
	// as the ad-hoc functions of EchoFunction need.
	AllowExec bool
	// CallbackAllow lists further X-Callback-Url targets, host:port
	// (faaslocal.Config.CallbackAllow).
	CallbackAllow []string
	// Binary is the multi-call binary (faaslocal.Config.Binary), default
	// cmd/shop-functions when Functions is not empty; EchoFunction's binary
	// is one too (its functions: EchoFunctions).
	Binary string
	// GatewayOnly sends every call between functions through the gateway
	// (faaslocal.Config.GatewayOnly).
	GatewayOnly bool
	// Secrets replace development secrets, or add secrets, before the
	// runtime starts (e.g. redis-password for a Redis that requires one).
	Secrets map[string]string
}

// Runtime is a running local runtime for one test.
type Runtime struct {
	*faaslocal.Runtime
	// GatewayURL is the OpenFaaS gateway API, e.g. http://127.0.0.1:41234.
	GatewayURL string
	// EdgeURL serves the public routes of gateway/kong.yml.
	EdgeURL string
	// SecretsDir holds every secret (jwt-signing-key, jwt-verify-key,
	// internal-callers, internal-token-<caller> for every internal caller, ...).
	SecretsDir string
}

// Authorize adds the gateway API's basic-auth credentials to req, as
// faas-cli does after faas-cli login: every call under /system/ needs them.
func (r *Runtime) Authorize(req *http.Request) {
	c := r.GatewayCredentials()
	req.SetBasicAuth(c.User, c.Password)
}

// Invocations reads every deployed function's invocation count from the
// gateway API (GET /system/functions, invocationCount), as faas-cli list
// shows it; the gateway counts a call to /function/<name> when it forwards it.
func (r *Runtime) Invocations(t testing.TB) map[string]int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.GatewayURL+"/system/functions", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /system/functions: %v", err)
	}
	defer res.Body.Close()
	var list []struct {
		Name            string  `json:"name"`
		InvocationCount float64 `json:"invocationCount"`
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /system/functions: %d", res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
		t.Fatalf("GET /system/functions: %v", err)
	}
	out := map[string]int{}
	for _, fn := range list {
		out[fn.Name] = int(fn.InvocationCount)
	}
	return out
}

// ReadSecret returns a secret's value, failing the test when it is missing.
func (r *Runtime) ReadSecret(t testing.TB, name string) string {
	t.Helper()
	v, err := r.Secret(name)
	if err != nil {
		t.Fatalf("secret %s: %v", name, err)
	}
	return v
}

// Root is the module root (the directory of go.mod), found via go env GOMOD.
func Root(t testing.TB) string {
	t.Helper()
	root.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			root.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			root.err = fmt.Errorf("not inside the module")
			return
		}
		root.path = filepath.Dir(gomod)
	})
	if root.err != nil {
		t.Fatal(root.err)
	}
	return root.path
}

type built struct {
	once sync.Once
	path string
	err  error
}

var (
	root     built
	binsMu   sync.Mutex
	binaries = map[string]*built{}
)

// Binary builds the main package pkg (module-relative, e.g. ./cmd/shop-functions)
// once per test process into .local/testbin (gitignored) and returns the
// executable's path. Test processes of several packages build under a file
// lock, and go build leaves an up-to-date binary untouched.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	r := Root(t)
	binsMu.Lock()
	b := binaries[pkg]
	if b == nil {
		b = &built{}
		binaries[pkg] = b
	}
	binsMu.Unlock()
	b.once.Do(func() { b.path, b.err = build(r, pkg) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func build(root, pkg string) (string, error) {
	dir := filepath.Join(root, ".local", "testbin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	path := filepath.Join(dir, filepath.Base(pkg))
	var out bytes.Buffer
	if err := faaslocal.GoBuild(context.Background(), root, pkg, path, &out); err != nil {
		return "", fmt.Errorf("%w\n%s", err, out.String())
	}
	return path, nil
}

// EchoFunction returns an fprocess that runs the echo test function (see
// dev/faaslocal/echofn): deploy it with any service name to get a
// function that answers with what it received. The same binary is a
// multi-call binary (Options.Binary) serving EchoFunctions through fnserve.
func EchoFunction(t testing.TB) string {
	t.Helper()
	return Binary(t, "./dev/faaslocal/echofn")
}

// EchoFunctions are the functions EchoFunction's binary serves as a
// multi-call binary (its list command).
var EchoFunctions = []string{"echo", "echo-b"}

// StateDir returns a new state directory for the test holding the
// development secrets (secrets.Development: the gateway API's credentials,
// jwt-signing-key, ...), as cmd/faas-local writes them on a first run.
func StateDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	store, err := secrets.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateDevelopment(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Start runs a runtime for the test, with the development secrets in a
// state directory of its own, and stops it (and every process it started)
// in t.Cleanup, failing the test when stopping fails.
func Start(t testing.TB, opts Options) *Runtime {
	t.Helper()
	out := &testWriter{t: t}
	cfg := faaslocal.Config{
		Root:          Root(t),
		StackFile:     opts.StackFile,
		KongFile:      cmp.Or(opts.KongFile, "gateway/kong.yml"),
		StateDir:      t.TempDir(),
		GatewayAddr:   "127.0.0.1:0",
		EdgeAddr:      "127.0.0.1:0",
		Functions:     opts.Functions,
		Env:           opts.Env,
		Quiet:         !opts.Verbose,
		Stdout:        out,
		StopGrace:     3 * time.Second,
		OTLPEndpoint:  opts.OTLPEndpoint,
		AllowExec:     opts.AllowExec,
		CallbackAllow: opts.CallbackAllow,
		Binary:        opts.Binary,
		GatewayOnly:   opts.GatewayOnly,
	}
	if cfg.Binary == "" && len(opts.Functions) > 0 {
		cfg.Binary = Binary(t, "./cmd/shop-functions")
	}
	for _, c := range opts.Connectors {
		cfg.Connectors = append(cfg.Connectors, faaslocal.Connector{Name: c, Path: Binary(t, "./connectors/"+c)})
	}
	cfg.StateDir = StateDir(t)
	if len(opts.Secrets) > 0 {
		store, err := secrets.Open(cfg.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		for name, value := range opts.Secrets {
			err := store.Update(name, []byte(value))
			if fault.Is(err, fault.NotFound, "") {
				err = store.Create(name, []byte(value))
			}
			if err != nil {
				t.Fatalf("secret %s: %v", name, err)
			}
		}
	}
	rt, err := faaslocal.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start local runtime: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("stop local runtime: %v", err)
		}
		out.close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(opts.ReadyTimeout, 60*time.Second))
	defer cancel()
	if err := rt.WaitReady(ctx, opts.Functions...); err != nil {
		t.Fatalf("local runtime: %v", err)
	}
	if err := rt.WaitSubscribed(ctx); err != nil {
		t.Fatalf("local runtime: %v", err)
	}
	return &Runtime{Runtime: rt, GatewayURL: rt.GatewayURL(), EdgeURL: rt.EdgeURL(), SecretsDir: rt.SecretsDir()}
}

// testWriter sends the runtime's output to the test log until the test ends.
type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// Output collects a process's or a runtime's output for a test: an io.Writer
// safe for concurrent writers, read back with String (proctest.Output).
type Output = proctest.Output
