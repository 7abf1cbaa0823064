// Command faas-local is the local OpenFaaS runtime that `make run` starts: it
// builds cmd/shop-functions, the connectors and the seed program, writes the
// development secrets on the first run, runs every function of stack.yml as
// replica processes on loopback ports behind the OpenFaaS gateway API (so
// faas-cli, go-sdk and the connectors work unchanged) and the public routes of
// gateway/kong.yml behind a local edge, seeds the development data, and stops
// every process it started on Ctrl-C.
//
//	go run ./cmd/faas-local [flags]
//	go run ./cmd/faas-local -h    # every flag, its FAAS_LOCAL_* variable and its default
//
// Every flag has a FAAS_LOCAL_* environment variable, which the flag
// overrides; the flags and their variables are listed once, in options.go,
// and -h prints them. Only loopback addresses are accepted.
//
// The gateway API's /system/* routes need basic auth, as on faasd: the first
// run writes <state>/secrets/basic-auth-user (admin) and basic-auth-password
// (random, 0600) and later runs reuse them; log faas-cli in with
//
//	cat .local/secrets/basic-auth-password | faas-cli login -g http://127.0.0.1:8080 -u admin --password-stdin
//
// A deployment whose envProcess is a shell command is refused unless
// -allow-exec is given, and an async call's X-Callback-Url may name only the
// gateway's own /function/* or a -callback-allow target.
// Every process inherits the host's OTEL_* variables; -otlp points them all,
// and the edge, at one OTLP/HTTP collector.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shopfaas/shop/dev/docassets"
	"github.com/shopfaas/shop/dev/faaslocal"
	"github.com/shopfaas/shop/dev/faaslocal/secrets"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "faas-local:", err)
		os.Exit(1)
	}
}

// readyTimeout bounds the wait for every function's replicas at start.
const readyTimeout = 2 * time.Minute

// run is the whole program, in order: options from args and the
// environment; the check that PostgreSQL, Redis and RabbitMQ answer; the
// development secrets that are missing; the API reference page's assets when
// missing; the builds; the runtime; the wait for every replica and the
// connector's subscriptions; the seed; then serving until ctx ends, and
// stopping everything, whose failures are returned. -h prints the flags and
// returns nil. lookupenv is the environment (os.LookupEnv).
func run(ctx context.Context, args []string, lookupenv func(string) (string, bool), stdout io.Writer) (err error) {
	getenv := func(name string) string { v, _ := lookupenv(name); return v }
	opts, err := parseOptions(args, lookupenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h: the usage is printed, nothing else asked for
	}
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := faaslocal.Preflight(ctx, root, nil); err != nil {
		return err
	}
	state, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return err
	}
	// The state's lock before its secrets and binaries are written: a second
	// faas-local on this state stops here, not after rebuilding the first
	// one's binaries.
	lock, err := faaslocal.LockState(state)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lock.Close()) }()
	// A port already taken stops the run here, not after every build.
	if err := checkListen(opts); err != nil {
		return err
	}
	store, err := secrets.Open(state)
	if err != nil {
		return err
	}
	if err := store.CreateDevelopment(); err != nil {
		return fmt.Errorf("development secrets: %w", err)
	}
	vendorDocs(ctx, root, stdout) // before the build: api-docs embeds them
	b := builder{root: root, bin: filepath.Join(state, "bin"), stdout: stdout}
	bins, err := b.buildAll(ctx, opts)
	if err != nil {
		return err
	}

	rt, err := faaslocal.Start(ctx, faaslocal.Config{
		Root: root, StackFile: opts.StackFile, KongFile: opts.KongFile, StateDir: state, StateLock: lock,
		GatewayAddr: opts.GatewayAddr, EdgeAddr: opts.EdgeAddr, Functions: opts.Functions,
		Binary: bins.functions, Connectors: bins.connectors, Stdout: stdout, Quiet: opts.Quiet, OTLPEndpoint: opts.OTLP,
		AllowExec: opts.AllowExec, CallbackAllow: opts.CallbackAllow, GatewayOnly: opts.GatewayOnly, AsyncInflight: opts.AsyncInflight,
		Log: slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: slog.LevelInfo})), Getenv: getenv,
	})
	if err != nil {
		return explainListen(opts, err)
	}
	defer func() {
		fmt.Fprintln(stdout, "stopping…")
		err = errors.Join(err, rt.Close())
	}()

	wctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := rt.WaitReady(wctx, opts.Functions...); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return err
	}
	// The demo catalog's events must reach index-product, and the first
	// order's must reach every handler: wait for the connector's bindings.
	if err := rt.WaitSubscribed(wctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if bins.seed != "" {
		fmt.Fprintln(stdout, "seeding development data (admin account, demo catalog)…")
		if err := runSeed(ctx, bins.seed, root, store.Dir(), getenv, stdout); err != nil {
			return err
		}
	}
	printReady(stdout, rt, len(opts.Functions))
	<-ctx.Done()
	return nil
}

// vendorDocs fetches the API reference page's assets (make api-docs) when
// they are missing, into the api-docs function's folder, which embeds them.
// Without npm or the registry the stack still starts: the page then says
// how to get them.
func vendorDocs(ctx context.Context, root string, stdout io.Writer) {
	dir := docassets.Dir(root)
	if docassets.Present(dir) {
		return
	}
	fmt.Fprintf(stdout, "vendoring the API reference page (%s@%s, npm pack)…\n", docassets.Package, docassets.Version)
	if err := docassets.Vendor(ctx, dir); err != nil {
		fmt.Fprintf(stdout, "API reference page not available (%v); /docs says how to get it\n", err)
	}
}

// printReady tells the developer where everything is.
func printReady(stdout io.Writer, rt *faaslocal.Runtime, functions int) {
	fmt.Fprintf(stdout, "\nready: %d functions\n  gateway  %s   (OPENFAAS_URL for faas-cli)\n", functions, rt.GatewayURL())
	if rt.EdgeURL() != "" {
		fmt.Fprintf(stdout, "  edge     %s/api/v1\n  docs     %s/docs   (the API reference; the contract at %s/openapi.yaml)\n",
			rt.EdgeURL(), rt.EdgeURL(), rt.EdgeURL())
	}
	fmt.Fprintf(stdout, "  state    %s\n  secrets  %s (%s)\n", rt.StateDir(), rt.SecretsDir(), secretNames(rt.SecretsDir()))
	fmt.Fprintf(stdout, "  login    cat %s | faas-cli login -g %s -u %s --password-stdin\nCtrl-C stops everything.\n",
		filepath.Join(rt.SecretsDir(), "basic-auth-password"), rt.GatewayURL(), rt.GatewayCredentials().User)
}

// secretNames lists the secrets in dir, the callers' internal tokens as one
// internal-token-<caller>: what the banner shows is what the stack holds.
func secretNames(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	var names []string
	tokens := false
	for _, e := range entries {
		switch n := e.Name(); {
		case e.IsDir() || strings.HasPrefix(n, "."):
		case strings.HasPrefix(n, "internal-token-"):
			if !tokens {
				names = append(names, "internal-token-<caller>")
			}
			tokens = true
		default:
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}
