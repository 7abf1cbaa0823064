package faaslocal

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/dev/faaslocal/supervisor"
	"github.com/shopfaas/shop/internal/fault"
)

// hostEnv are the host variables every process inherits: enough for sh, go
// and the toolchain, nothing that would leak the developer's credentials.
var hostEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ", "GOCOVERDIR", "GOCACHE", "GOPATH", "GOMODCACHE"}

// Error codes of deployments the launcher refuses.
const (
	// codeNothingToRun: no process can serve the deployment.
	codeNothingToRun = "nothing_to_run"
	// codeExecRefused: the deployment's envProcess is a shell command and
	// the runtime was not started with Config.AllowExec.
	codeExecRefused = "exec_not_allowed"
	// codeNotDevelopment: a function of the multi-call binary deployed with
	// an environment whose SHOP_ENV is not development.
	codeNotDevelopment = "not_development"
)

// devEnv is the SHOP_ENV of every function the local runtime runs: stack.yml
// takes the environment_file env/${SHOP_ENV:-production}.yml, and only
// env/development.yml names this machine's services.
const devEnv = "development"

// templateProcess is the fprocess of the shop-go template's image
// (template/shop-go/template.yml): a handler binary inside an image, which
// does not exist in the repository the local runtime runs from.
const templateProcess = "./handler"

// launcher decides the command and the environment of every process the
// runtime starts: function replicas (functions.Launcher) and connectors.
type launcher struct {
	root       string            // working directory
	binary     string            // the multi-call binary, "" when none
	known      map[string]bool   // functions the binary serves
	host       map[string]string // hostEnv values
	file       map[string]string // connectorEnvFile's values, read once when the runtime opens
	telemetry  map[string]string // TelemetryEnv of the host and Config.OTLPEndpoint
	overrides  map[string]string // Config.Env
	gatewayURL string            // the gateway API, for GATEWAY_URL
	services   *services         // SERVICE_ADDR and FUNCTION_URLS; nil: every call through the gateway
	allowExec  bool              // Config.AllowExec: envProcess may run under sh -c
}

// listKnown asks the multi-call binary which functions it serves.
func listKnown(ctx context.Context, binary string) (map[string]bool, error) {
	known := map[string]bool{}
	if binary == "" {
		return known, nil
	}
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("multi-call binary: %w", err)
	}
	out, err := exec.CommandContext(ctx, binary, "list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s list: %w", binary, err)
	}
	for _, n := range strings.Fields(string(out)) {
		known[n] = true
	}
	return known, nil
}

// HostEnv is the part of getenv's environment that every process the
// runtime starts inherits (PATH, HOME, TMPDIR, LANG, TZ and the Go
// toolchain's directories), as KEY=value: nothing that would leak the
// developer's credentials.
func HostEnv(getenv func(string) string) []string { return envList(hostVars(getenv)) }

// hostVars picks hostEnv out of getenv.
func hostVars(getenv func(string) string) map[string]string {
	env := map[string]string{}
	for _, k := range hostEnv {
		if v := getenv(k); v != "" {
			env[k] = v
		}
	}
	return env
}

// localDrain is the healthcheck_interval a function gets locally unless its
// deployment sets one: long enough for the supervisor's one-second health
// probe to see the 503 even on a loaded machine (the image sets the same 5s).
const localDrain = "5s"

// TelemetryEnv is the OpenTelemetry part of the host environment that every
// process the runtime starts inherits: each OTEL_* variable of environ
// (KEY=value) except OTEL_SERVICE_NAME, which would give every process the
// same name. A non-empty otlp points every process at that OTLP/HTTP
// collector (OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318): it
// replaces the host's endpoint and drops its traces-only endpoint, which
// would take precedence in the exporter.
func TelemetryEnv(environ []string, otlp string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "OTEL_") && k != "OTEL_SERVICE_NAME" {
			env[k] = v
		}
	}
	if otlp != "" {
		env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
		delete(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	}
	return env
}

// Process implements functions.Launcher: a function of the multi-call
// binary runs as `<binary> <name>` (its envProcess is ignored), anything
// else as its envProcess under sh -c, and only when the runtime was started
// with Config.AllowExec (faas-local -allow-exec): otherwise whoever holds the
// gateway's credentials could run any command as the developer, in the
// repository, next to every secret (issue 12, finding 1). Its environment
// is, later entries winning: the host variables, the deployment's envVars,
// the OpenTelemetry variables (TelemetryEnv),
// GATEWAY_URL and FUNCTION_URLS (every function's direct address, see
// services), Config.Env, healthcheck_interval (localDrain when none of
// those set it), then OPENFAAS_NAME, BIND_HOST=127.0.0.1,
// LOOPBACK_HOST_ONLY=true, SECRETS_DIR and, for a function of the
// multi-call binary, SERVICE_ADDR (the port its replicas share), which
// nothing overrides. Those names are derivedEnv. Without services
// (Config.GatewayOnly) there is no FUNCTION_URLS and no SERVICE_ADDR.
//
// A function of the multi-call binary whose environment (the deployment's
// envVars, then Config.Env) does not set SHOP_ENV to development, missing
// included, is refused (fault.Invalid, codeNotDevelopment): faas-cli deploy
// of a stack.yml function from a shell without SHOP_ENV=development sends
// env/production.yml's environment (faasd's host names, DATABASE_CREATE
// false), and faas-cli deploy --name … --image … none at all (production
// defaults); either's replicas pass the health check and replace the working
// ones, and every call then fails. Process runs before a deploy or an update
// touches anything running, so the old replicas keep serving.
func (l *launcher) Process(spec types.FunctionDeployment, secretsDir string) (supervisor.Spec, error) {
	var p supervisor.Spec
	switch {
	case l.known[spec.Service]:
		p = supervisor.Spec{Path: l.binary, Args: []string{spec.Service}}
	case spec.EnvProcess == templateProcess:
		return p, fault.E(fault.Invalid, codeNothingToRun, fmt.Sprintf(
			"%q was made from the shop-go template (fprocess %s), which the local runtime cannot run from an image: "+
				"add it to stack.yml and the route table, run make generate and restart make run, "+
				"and it runs from the multi-call binary (docs/adding-a-function.md); known: %v",
			spec.Service, templateProcess, l.Known()))
	case spec.EnvProcess != "" && !l.allowExec:
		return p, fault.E(fault.Invalid, codeExecRefused, fmt.Sprintf(
			"%q has an envProcess (fprocess) to run as a shell command, which faas-local refuses unless started "+
				"with -allow-exec (FAAS_LOCAL_ALLOW_EXEC=true); functions of the multi-call binary need no envProcess; known: %v",
			spec.Service, l.Known()))
	case spec.EnvProcess != "":
		p = supervisor.Spec{Path: "/bin/sh", Args: []string{"-c", spec.EnvProcess}}
	default:
		return p, fault.E(fault.Invalid, codeNothingToRun, fmt.Sprintf(
			"%q is not a function of the multi-call binary and has no envProcess (fprocess) to run: "+
				"if it is new, add it to the route table and run make generate (docs/adding-a-function.md); known: %v",
			spec.Service, l.Known()))
	}
	env := maps.Clone(l.host)
	maps.Copy(env, spec.EnvVars)
	maps.Copy(env, l.telemetry)
	l.setGateway(env)
	maps.Copy(env, l.overrides)
	if v, ok := env["SHOP_ENV"]; v != devEnv && l.known[spec.Service] {
		got := "SHOP_ENV=" + v + " in its environment"
		if !ok {
			// faas-cli deploy --name … --image … sends no environment: the
			// function would start with internal/config's production
			// defaults, which fnserve's health check does not notice.
			got = "no SHOP_ENV in its environment (it would run as production)"
		}
		return supervisor.Spec{}, fault.E(fault.Invalid, codeNotDevelopment, fmt.Sprintf(
			"%q has %s: the local runtime runs the shop's functions with SHOP_ENV=%s only "+
				"(stack.yml's environment_file is env/${SHOP_ENV:-production}.yml, and only env/development.yml names "+
				"this machine's services); deploy with SHOP_ENV=development faas-cli deploy … "+
				"(export OPENFAAS_URL=http://127.0.0.1:8080 SHOP_ENV=development, docs/faas-cli.md); "+
				"the running replicas were left alone",
			spec.Service, got, devEnv))
	}
	if env["healthcheck_interval"] == "" {
		// fnserve's drain after SIGTERM: the supervisor takes a replica out
		// of rotation before signalling it, or on its first 503 when
		// something else sent the signal (it probes every second).
		env["healthcheck_interval"] = localDrain
	}
	env["OPENFAAS_NAME"] = spec.Service
	env["BIND_HOST"] = "127.0.0.1"
	// A DNS-rebinding page could reach each loopback port under its own
	// name (fnserve answers it 421 with this set); every local caller (the
	// gateway's forwarder, FUNCTION_URLS, the supervisor's probe) uses
	// 127.0.0.1. Production leaves it unset: of-watchdog passes the
	// client's Host through.
	env["LOOPBACK_HOST_ONLY"] = "true"
	env["SECRETS_DIR"] = secretsDir
	// The runtime owns the shared port: a deployment naming another
	// function's would receive that function's calls.
	delete(env, "SERVICE_ADDR")
	if addr := l.services.addr(spec.Service); addr != "" && l.known[spec.Service] {
		env["SERVICE_ADDR"] = addr
	}
	p.Env, p.Dir = envList(env), l.root
	return p, nil
}

// derivedEnv are the names Process derives itself and sets over a
// deployment's, the one list of them: what faas-cli describe lists with the
// process's value (functions.Launcher.Derived) and what docs/local-runtime.md
// names (TestDerivedEnvIsWhatProcessSets holds Process to it). None is a
// secret.
var derivedEnv = []string{
	"GATEWAY_URL", "FUNCTION_URLS", "SERVICE_ADDR", "OPENFAAS_NAME",
	"BIND_HOST", "LOOPBACK_HOST_ONLY", "SECRETS_DIR", "healthcheck_interval",
}

// Derived implements functions.Launcher: derivedEnv.
func (l *launcher) Derived() []string { return slices.Clone(derivedEnv) }

// Known lists the functions the multi-call binary serves, sorted.
func (l *launcher) Known() []string { return slices.Sorted(maps.Keys(l.known)) }

// orderPathGODEBUG is the GODEBUG of the processes on every order's path:
// the functions stack.yml gives it to, and the connectors, as their compose
// services set it (the relay and the RabbitMQ connector are on that path).
// schedtrace keeps the Go runtime's monitor thread out of the deep sleep it
// leaves at 20 µs steps on every wake-up (docs/performance.md, item 30); its
// trace line would come once per 24.8 days.
const orderPathGODEBUG = "schedtrace=2147483647"

// connectorEnvFile is the environment file every connector reads, as their
// compose services do in production.
const connectorEnvFile = "env/development.yml"

// connector is how connector c runs: its environment is, later entries
// winning, the host variables, env/development.yml, the OpenTelemetry
// variables (TelemetryEnv), GATEWAY_URL and FUNCTION_URLS (unless
// Config.GatewayOnly), SECRETS_DIR (every secret) and
// basic_auth=true (the connectors read the gateway API's credentials from
// SECRETS_DIR; the OpenFaaS connectors' secret_mount_path is not read),
// GODEBUG (orderPathGODEBUG), Config.Env, then BIND_HOST=127.0.0.1.
func (l *launcher) connector(c Connector, secretsDir string) supervisor.Spec {
	return supervisor.Spec{Path: c.Path, Env: envList(l.connectorEnv(secretsDir)), Dir: l.root}
}

// connectorEnv is the environment every connector runs with (see connector).
func (l *launcher) connectorEnv(secretsDir string) map[string]string {
	env := maps.Clone(l.host)
	maps.Copy(env, l.file) // the overrides go last, below
	maps.Copy(env, l.telemetry)
	l.setGateway(env)
	env["SECRETS_DIR"] = secretsDir
	env["basic_auth"] = "true"
	env["GODEBUG"] = orderPathGODEBUG
	maps.Copy(env, l.overrides)
	env["BIND_HOST"] = "127.0.0.1"
	return env
}

// setGateway sets how a process calls functions: GATEWAY_URL, and
// FUNCTION_URLS for the direct calls that fall back to the gateway; without
// services (Config.GatewayOnly) a FUNCTION_URLS the deployment sent is
// dropped too, so that every call goes through the gateway.
func (l *launcher) setGateway(env map[string]string) {
	env["GATEWAY_URL"] = l.gatewayURL
	if urls := l.services.urls(); urls != "" {
		env["FUNCTION_URLS"] = urls
	} else {
		delete(env, "FUNCTION_URLS")
	}
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}
