package faaslocal

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/openfaas/go-sdk/stack"

	"github.com/shopfaas/shop/dev/stackfile"
)

// Errors of the function and secret operations; the gateway maps them to
// statuses (errInvalid → 400, errNotFound → 404, errExists → 409).
var (
	errInvalid  = errors.New("invalid request")
	errNotFound = errors.New("not found")
	errExists   = errors.New("already exists")
)

var (
	functionName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	secretName   = regexp.MustCompile(`^[a-zA-Z0-9]([-._a-zA-Z0-9]{0,251}[a-zA-Z0-9])?$`)
)

func validSecretName(n string) bool { return secretName.MatchString(n) && !strings.Contains(n, "..") }

// scaleMinLabel is the label that sets a function's replica count at deploy.
const scaleMinLabel = "com.openfaas.scale.min"

// deploy starts spec's replicas. With replace, an existing function is
// stopped first (update = replace, as faasd); without it, deploying over an
// existing function also replaces it, as faas-cli deploy expects.
func (rt *Runtime) deploy(spec types.FunctionDeployment, mustExist bool) error {
	if !functionName.MatchString(spec.Service) {
		return fmt.Errorf("%w: service name %q must be lower-case letters, digits and '-' (at most 63)", errInvalid, spec.Service)
	}
	if spec.Namespace != "" && spec.Namespace != Namespace {
		return fmt.Errorf("%w: namespace %q does not exist (only %s)", errInvalid, spec.Namespace, Namespace)
	}
	replicas := 1
	if spec.Labels != nil {
		if v, ok := (*spec.Labels)[scaleMinLabel]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > rt.cfg.MaxReplicas {
				return fmt.Errorf("%w: label %s must be an integer from 0 to %d", errInvalid, scaleMinLabel, rt.cfg.MaxReplicas)
			}
			replicas = n
		}
	}
	var proc procSpec
	switch {
	case rt.known[spec.Service]:
		proc = procSpec{path: rt.cfg.Binary, args: []string{spec.Service}}
	case spec.EnvProcess != "":
		proc = procSpec{path: "/bin/sh", args: []string{"-c", spec.EnvProcess}}
	default:
		return fmt.Errorf("%w: %q is not a function of the multi-call binary (known: %v) and has no envProcess (fprocess) to run",
			errInvalid, spec.Service, rt.Known())
	}
	for _, s := range spec.Secrets {
		if !validSecretName(s) {
			return fmt.Errorf("%w: secret name %q", errInvalid, s)
		}
		if _, err := os.Stat(filepath.Join(rt.SecretsDir(), s)); err != nil {
			return fmt.Errorf("%w: secret %q does not exist, create it first", errInvalid, s)
		}
	}

	rt.opMu.Lock()
	defer rt.opMu.Unlock()
	if rt.ctx.Err() != nil {
		return fmt.Errorf("runtime is stopping")
	}
	rt.mu.Lock()
	old := rt.fns[spec.Service]
	rt.mu.Unlock()
	if mustExist && old == nil {
		return fmt.Errorf("function %q: %w", spec.Service, errNotFound)
	}
	if old != nil {
		stopAll(old.replicas)
	}

	secretsDir := filepath.Join(rt.cfg.StateDir, "functions", spec.Service, "secrets")
	if err := rt.copySecrets(secretsDir, spec.Secrets); err != nil {
		return err
	}
	env := rt.baseEnv()
	maps.Copy(env, spec.EnvVars)
	env["GATEWAY_URL"] = rt.GatewayURL()
	maps.Copy(env, rt.cfg.Env)
	env["OPENFAAS_NAME"] = spec.Service
	env["BIND_HOST"] = "127.0.0.1"
	env["SECRETS_DIR"] = secretsDir
	proc.env = envList(env)
	proc.dir = rt.cfg.Root

	spec.Namespace = Namespace
	fn := &function{spec: spec, created: time.Now().UTC(), proc: proc}
	if old != nil {
		fn.invoked = old.invoked
	}
	rt.mu.Lock()
	if rt.logs[spec.Service] == nil {
		rt.logs[spec.Service] = newLogRing(rt.cfg.LogLines)
	}
	rt.fns[spec.Service] = fn
	rt.mu.Unlock()
	rt.scaleLocked(fn, replicas)
	rt.notify()
	return nil
}

// copySecrets gives a function a directory holding only its declared secrets.
func (rt *Runtime) copySecrets(dir string, names []string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("secrets dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("secrets dir: %w", err)
	}
	for _, s := range names {
		b, err := os.ReadFile(filepath.Join(rt.SecretsDir(), s))
		if err != nil {
			return fmt.Errorf("%w: secret %q: %v", errInvalid, s, err)
		}
		if err := os.WriteFile(filepath.Join(dir, s), b, 0o600); err != nil {
			return fmt.Errorf("secret %q: %w", s, err)
		}
	}
	return nil
}

func stopAll(rs []*replica) {
	done := make(chan struct{}, len(rs))
	for _, r := range rs {
		go func() { r.stop(); done <- struct{}{} }()
	}
	for range rs {
		<-done
	}
}

// scaleLocked starts or stops replicas until fn has n; opMu must be held.
func (rt *Runtime) scaleLocked(fn *function, n int) {
	rt.mu.Lock()
	var stopping []*replica
	for len(fn.replicas) < n {
		fn.seq++
		r := rt.sup.start(rt.ctx, fn.spec.Service, fn.spec.Service+"-"+strconv.Itoa(fn.seq), fn.proc)
		fn.replicas = append(fn.replicas, r)
	}
	if len(fn.replicas) > n {
		stopping = fn.replicas[n:]
		fn.replicas = fn.replicas[:n:n]
	}
	rt.mu.Unlock()
	stopAll(stopping)
	rt.notify()
}

// scale sets a deployed function's replica count.
func (rt *Runtime) scale(name string, n uint64) error {
	if n > uint64(rt.cfg.MaxReplicas) {
		return fmt.Errorf("%w: replicas must be at most %d", errInvalid, rt.cfg.MaxReplicas)
	}
	rt.opMu.Lock()
	defer rt.opMu.Unlock()
	rt.mu.Lock()
	fn := rt.fns[name]
	rt.mu.Unlock()
	if fn == nil {
		return fmt.Errorf("function %q: %w", name, errNotFound)
	}
	rt.scaleLocked(fn, int(n))
	return nil
}

// remove stops a function's processes and forgets it.
func (rt *Runtime) remove(name string) error {
	rt.opMu.Lock()
	defer rt.opMu.Unlock()
	rt.mu.Lock()
	fn := rt.fns[name]
	delete(rt.fns, name)
	rt.mu.Unlock()
	if fn == nil {
		return fmt.Errorf("function %q: %w", name, errNotFound)
	}
	stopAll(fn.replicas)
	rt.notify()
	return nil
}

// status is the FunctionStatus of fn; the caller holds rt.mu.
func status(fn *function) types.FunctionStatus {
	s := fn.spec
	return types.FunctionStatus{
		Name: s.Service, Image: s.Image, Namespace: Namespace, EnvProcess: s.EnvProcess, EnvVars: s.EnvVars,
		Constraints: s.Constraints, Secrets: s.Secrets, Labels: s.Labels, Annotations: s.Annotations,
		Limits: s.Limits, Requests: s.Requests, ReadOnlyRootFilesystem: s.ReadOnlyRootFilesystem,
		InvocationCount: float64(fn.invoked), Replicas: uint64(len(fn.replicas)),
		AvailableReplicas: uint64(availableCount(fn)), CreatedAt: fn.created,
	}
}

// putSecret creates (create=true, errExists when present) or updates
// (errNotFound when absent) a secret. Running replicas see the new value
// after their function is redeployed, as on faasd.
func (rt *Runtime) putSecret(s types.Secret, create bool) error {
	if !validSecretName(s.Name) {
		return fmt.Errorf("%w: secret name %q", errInvalid, s.Name)
	}
	if s.Namespace != "" && s.Namespace != Namespace {
		return fmt.Errorf("%w: namespace %q does not exist", errInvalid, s.Namespace)
	}
	value := s.RawValue
	if len(value) == 0 {
		value = []byte(s.Value)
	}
	rt.opMu.Lock()
	defer rt.opMu.Unlock()
	p := filepath.Join(rt.SecretsDir(), s.Name)
	_, err := os.Stat(p)
	switch {
	case create && err == nil:
		return fmt.Errorf("secret %q: %w", s.Name, errExists)
	case !create && err != nil:
		return fmt.Errorf("secret %q: %w", s.Name, errNotFound)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, value, 0o600); err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	return os.Rename(tmp, p)
}

func (rt *Runtime) deleteSecret(name string) error {
	if !validSecretName(name) {
		return fmt.Errorf("%w: secret name %q", errInvalid, name)
	}
	rt.opMu.Lock()
	defer rt.opMu.Unlock()
	if err := os.Remove(filepath.Join(rt.SecretsDir(), name)); err != nil {
		return fmt.Errorf("secret %q: %w", name, errNotFound)
	}
	return nil
}

func (rt *Runtime) listSecrets() ([]types.Secret, error) {
	entries, err := os.ReadDir(rt.SecretsDir())
	if err != nil {
		return nil, err
	}
	out := []types.Secret{}
	for _, e := range entries {
		if e.Type().IsRegular() && validSecretName(e.Name()) && !strings.HasSuffix(e.Name(), ".tmp") {
			out = append(out, types.Secret{Name: e.Name(), Namespace: Namespace})
		}
	}
	return out, nil
}

// DefaultConnectors are the connectors `make run` supervises when their
// directories exist under connectors/.
func DefaultConnectors() []string {
	return []string{"rabbitmq", "outbox-relay", "scheduler"}
}

type connector struct {
	name string
	bin  string
}

// prepareConnectors builds (when Build) the configured connectors whose
// directories hold Go files, skipping the others with a notice.
func (rt *Runtime) prepareConnectors() ([]connector, error) {
	var out []connector
	for _, name := range rt.cfg.Connectors {
		dir := filepath.Join(rt.cfg.Root, "connectors", name)
		if m, _ := filepath.Glob(filepath.Join(dir, "*.go")); len(m) == 0 {
			rt.printf("connector %s: no connectors/%s yet, skipped\n", name, name)
			continue
		}
		bin := filepath.Join(rt.binDir(), name)
		if rt.cfg.Build {
			if err := rt.build(rt.ctx, "./connectors/"+name, bin, "connector "+name); err != nil {
				return nil, err
			}
		}
		if _, err := os.Stat(bin); err != nil {
			rt.printf("connector %s: %s not built, skipped\n", name, bin)
			continue
		}
		out = append(out, connector{name: name, bin: bin})
	}
	return out, nil
}

// startConnector supervises a connector like a replica: restarted when it
// exits, stopped by Close. Its environment is the development environment
// file plus GATEWAY_URL, SECRETS_DIR (every secret) and Config.Env.
func (rt *Runtime) startConnector(c connector) {
	env := rt.baseEnv()
	fileEnv, err := stackfile.Environment(rt.cfg.Root, devEnvFunction())
	if err != nil {
		rt.printf("connector %s: %v\n", c.name, err)
	}
	maps.Copy(env, fileEnv)
	env["GATEWAY_URL"] = rt.GatewayURL()
	env["SECRETS_DIR"] = rt.SecretsDir()
	maps.Copy(env, rt.cfg.Env)
	env["BIND_HOST"] = "127.0.0.1"
	proc := procSpec{path: c.bin, env: envList(env), dir: rt.cfg.Root}
	rt.mu.Lock()
	rt.logs[c.name] = newLogRing(rt.cfg.LogLines)
	rt.connectors = append(rt.connectors, rt.sup.start(rt.ctx, c.name, c.name+"-1", proc))
	rt.mu.Unlock()
}

func devEnvFunction() stack.Function {
	return stack.Function{EnvironmentFile: []string{"env/development.yml"}}
}
