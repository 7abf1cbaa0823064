package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/shopfaas/shop/dev/faaslocal"
	"github.com/shopfaas/shop/dev/stackfile"
)

// options are the program's settings: each flag defaults to its
// FAAS_LOCAL_* environment variable, then to the value shown. A variable set
// to "" counts as unset, except for the flags whose empty value turns
// something off (FAAS_LOCAL_KONG, FAAS_LOCAL_CONNECTORS, FAAS_LOCAL_SEED):
// set, even to "", it is the flag's default, so FAAS_LOCAL_KONG= turns the
// edge off as -kong "" does.
type options struct {
	// GatewayAddr is the gateway API's address (loopback only; 127.0.0.1:8080).
	GatewayAddr string
	// EdgeAddr is the edge's address (loopback only; 127.0.0.1:8000).
	EdgeAddr string
	// StateDir holds binaries, secrets and the async journal (.local).
	StateDir string
	// StackFile is the stack to run (stack.yml).
	StackFile string
	// KongFile is the edge's configuration; empty (-kong "", or
	// FAAS_LOCAL_KONG set to "") disables the edge (gateway/kong.yml).
	KongFile string
	// Functions are the functions to deploy (default: every function of the stack).
	Functions []string
	// Connectors are connectors/<name> to build and run when they exist
	// (rabbitmq, outbox-relay, scheduler).
	Connectors []string
	// Seed is the Go package run once the functions are ready; empty disables seeding (./cmd/seed).
	Seed string
	// Quiet stops echoing function output; /system/logs still has it.
	Quiet bool
	// OTLP is an OTLP/HTTP collector's base URL (e.g. http://127.0.0.1:4318,
	// `make jaeger`) that every function, connector and the edge export
	// their spans to; empty leaves the host's OTEL_* variables in charge.
	OTLP string
	// AllowExec lets a deployment run its envProcess (fprocess) as a shell
	// command; without it only the multi-call binary's functions deploy.
	AllowExec bool
	// CallbackAllow lists the host:port targets an X-Callback-Url may name
	// besides the gateway's own /function/*.
	CallbackAllow []string
	// AsyncInflight is how many /async-function calls run at once
	// (faaslocal.Config.AsyncInflight; faasd's queue-worker runs 1).
	AsyncInflight int
	// GatewayOnly sends every call between functions through the gateway,
	// as on faasd, instead of directly to the function's shared port
	// (faaslocal.Config.GatewayOnly).
	GatewayOnly bool
}

// defaultConnectors are the connectors `make run` supervises when their
// directories exist under connectors/.
var defaultConnectors = []string{"rabbitmq", "outbox-relay", "scheduler"}

// parseOptions reads args over the environment and checks the result,
// reporting every problem at once. Without -functions, the stack's
// functions are listed. -h prints every flag with its variable to stdout
// and returns flag.ErrHelp.
func parseOptions(args []string, lookupenv func(string) (string, bool), stdout io.Writer) (options, error) {
	getenv := func(name string) string { v, _ := lookupenv(name); return v }
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var o options
	var functions, connectors, callbacks string
	fs := flag.NewFlagSet("faas-local", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: go run ./cmd/faas-local [flags]\n\n"+
			"A flag wins over its environment variable (env), which wins over the\n"+
			"built-in default; a default shown below already includes a variable that is\n"+
			"set. Addresses must be loopback.\n\n")
		fs.PrintDefaults()
	}
	// Each flag names its variable in its usage line, so -h lists both.
	str := func(p *string, name, variable, def, usage string) {
		fs.StringVar(p, name, env(variable, def), usage+"\nenv "+variable)
	}
	// strOff is str for a flag whose empty value turns something off: its
	// variable set to "" is that empty value, not the built-in default.
	strOff := func(p *string, name, variable, def, usage string) {
		if v, ok := lookupenv(variable); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+"\nenv "+variable)
	}
	boolean := func(p *bool, name, variable, usage string) {
		def, _ := strconv.ParseBool(env(variable, "false"))
		fs.BoolVar(p, name, def, usage+"\nenv "+variable)
	}
	integer := func(p *int, name, variable string, def int, usage string) {
		if v, err := strconv.Atoi(getenv(variable)); err == nil {
			def = v
		}
		fs.IntVar(p, name, def, usage+"\nenv "+variable)
	}
	str(&o.GatewayAddr, "gateway", "FAAS_LOCAL_GATEWAY_ADDR", "127.0.0.1:8080", "gateway API listen address (loopback only)")
	str(&o.EdgeAddr, "edge", "FAAS_LOCAL_EDGE_ADDR", "127.0.0.1:8000", "edge listen address (loopback only)")
	str(&o.StateDir, "state", "FAAS_LOCAL_STATE_DIR", ".local", "state directory (binaries, secrets, async journal)")
	str(&o.StackFile, "stack", "FAAS_LOCAL_STACK", "stack.yml", "stack file")
	strOff(&o.KongFile, "kong", "FAAS_LOCAL_KONG", "gateway/kong.yml", "Kong declarative config for the edge (empty disables the edge: -kong \"\" or FAAS_LOCAL_KONG set to \"\")")
	str(&functions, "functions", "FAAS_LOCAL_FUNCTIONS", "", "comma-separated functions to deploy (default: all of the stack)")
	strOff(&connectors, "connectors", "FAAS_LOCAL_CONNECTORS", strings.Join(defaultConnectors, ","), "comma-separated connectors/<name> to run when present (empty: none)")
	strOff(&o.Seed, "seed", "FAAS_LOCAL_SEED", "./cmd/seed", "Go package run once the functions are ready to seed development data (empty disables)")
	str(&o.OTLP, "otlp", "FAAS_LOCAL_OTLP", "", "OTLP/HTTP collector URL every process exports spans to, e.g. http://127.0.0.1:4318 (default: the host's OTEL_* variables)")
	str(&callbacks, "callback-allow", "FAAS_LOCAL_CALLBACK_ALLOW", "", "comma-separated host:port targets an async call's X-Callback-Url may name besides this gateway's /function/*")
	integer(&o.AsyncInflight, "async-inflight", "FAAS_LOCAL_ASYNC_INFLIGHT", 1, "how many /async-function calls run at once; the others wait in the journal (faasd's queue-worker: max_inflight=1)")
	boolean(&o.AllowExec, "allow-exec", "FAAS_LOCAL_ALLOW_EXEC", "let a deployment run its envProcess (fprocess) as a shell command (refused by default)")
	boolean(&o.GatewayOnly, "gateway-only", "FAAS_LOCAL_GATEWAY_ONLY", "send every call between functions through the gateway, as on faasd (default: directly, falling back to the gateway)")
	boolean(&o.Quiet, "quiet", "FAAS_LOCAL_QUIET", "do not echo function output (it stays in /system/logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.Functions, o.Connectors, o.CallbackAllow = split(functions), split(connectors), split(callbacks)
	if err := o.validate(); err != nil {
		return o, err
	}
	if o.Functions == nil {
		s, err := stackfile.LoadEnv(o.StackFile, func(k string) string {
			if k == "SHOP_ENV" {
				return "development"
			}
			return getenv(k)
		})
		if err != nil {
			return o, err
		}
		o.Functions = stackfile.Names(s)
	}
	return o, nil
}

// validate reports every problem that would stop the runtime later, before
// anything is built.
func (o options) validate() error {
	var errs []error
	for _, a := range []struct{ flag, addr string }{{"-gateway", o.GatewayAddr}, {"-edge", o.EdgeAddr}} {
		if err := faaslocal.CheckLoopback(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.flag, err))
		}
	}
	if o.AsyncInflight < 1 {
		errs = append(errs, fmt.Errorf("-async-inflight %d: want 1 or more", o.AsyncInflight))
	}
	if o.StateDir == "" {
		errs = append(errs, errors.New("-state must not be empty"))
	}
	if o.OTLP != "" {
		if u, err := url.Parse(o.OTLP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("-otlp %q is not an http(s) URL", o.OTLP))
		}
	}
	return errors.Join(errs...)
}

// split parses a comma-separated list; empty means nil.
func split(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
