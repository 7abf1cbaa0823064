// Command faas-local is the local OpenFaaS runtime that `make run` starts: it
// builds cmd/shop-functions once, runs every function of stack.yml as replica
// processes on loopback ports, serves the OpenFaaS gateway API (so faas-cli,
// go-sdk and the connectors work unchanged) and the public routes of
// gateway/kong.yml through a local edge. Ctrl-C stops every process it started.
//
//	go run ./cmd/faas-local [-gateway 127.0.0.1:8080] [-edge 127.0.0.1:8000] [-state .local] [-quiet]
//
// Every flag has an environment override (FAAS_LOCAL_GATEWAY_ADDR,
// FAAS_LOCAL_EDGE_ADDR, FAAS_LOCAL_STATE_DIR, FAAS_LOCAL_STACK, FAAS_LOCAL_KONG,
// FAAS_LOCAL_FUNCTIONS, FAAS_LOCAL_CONNECTORS, FAAS_LOCAL_QUIET); only
// loopback addresses are accepted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal"
	"github.com/shopfaas/shop/dev/stackfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "faas-local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("faas-local", flag.ContinueOnError)
	fs.SetOutput(stdout)
	gateway := fs.String("gateway", env("FAAS_LOCAL_GATEWAY_ADDR", "127.0.0.1:8080"), "gateway API listen address (loopback only)")
	edgeAddr := fs.String("edge", env("FAAS_LOCAL_EDGE_ADDR", "127.0.0.1:8000"), "edge listen address (loopback only)")
	state := fs.String("state", env("FAAS_LOCAL_STATE_DIR", ".local"), "state directory (binaries, secrets)")
	stackFile := fs.String("stack", env("FAAS_LOCAL_STACK", "stack.yml"), "stack file")
	kong := fs.String("kong", env("FAAS_LOCAL_KONG", "gateway/kong.yml"), "Kong declarative config for the edge (empty disables the edge)")
	only := fs.String("functions", env("FAAS_LOCAL_FUNCTIONS", ""), "comma-separated functions to deploy (default: all of the stack)")
	connectors := fs.String("connectors", env("FAAS_LOCAL_CONNECTORS", strings.Join(faaslocal.DefaultConnectors(), ",")), "comma-separated connectors/<name> to run when present")
	seed := fs.String("seed", env("FAAS_LOCAL_SEED", "./cmd/seed"), "Go package run once the functions are ready to seed development data (empty disables)")
	quietDefault, _ := strconv.ParseBool(env("FAAS_LOCAL_QUIET", "false"))
	quiet := fs.Bool("quiet", quietDefault, "do not echo function output (it stays in /system/logs)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	functions := split(*only)
	if functions == nil {
		s, err := stackfile.LoadEnv(*stackFile, func(k string) string {
			if k == "SHOP_ENV" {
				return "development"
			}
			return getenv(k)
		})
		if err != nil {
			return err
		}
		functions = stackfile.Names(s)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rt, err := faaslocal.Start(ctx, faaslocal.Config{
		Root: root, StackFile: *stackFile, KongFile: *kong, StateDir: *state,
		GatewayAddr: *gateway, EdgeAddr: *edgeAddr, Functions: functions, Connectors: split(*connectors),
		Build: true, Stdout: stdout, Quiet: *quiet, Log: log, Getenv: getenv,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stdout, "stopping…")
		_ = rt.Close()
	}()

	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := rt.WaitReady(wctx, functions...); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	secrets, _ := filepath.Abs(rt.SecretsDir())
	if *seed != "" {
		fmt.Fprintln(stdout, "seeding development data (admin account, demo catalog)…")
		if err := runSeed(ctx, *seed, secrets, stdout); err != nil {
			return err
		}
	}
	statePath, _ := filepath.Abs(rt.StateDir())
	fmt.Fprintf(stdout, "\nready: %d functions\n  gateway  %s   (OPENFAAS_URL for faas-cli)\n", len(functions), rt.GatewayURL())
	if rt.EdgeURL() != "" {
		fmt.Fprintf(stdout, "  edge     %s/api/v1\n", rt.EdgeURL())
	}
	fmt.Fprintf(stdout, "  state    %s\n  secrets  %s (jwt-secret, internal-token, admin-email, admin-password)\nCtrl-C stops everything.\n",
		statePath, secrets)
	<-ctx.Done()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// runSeed runs the seed program with the development environment and the
// runtime's secrets, so the admin account matches the admin-* secrets.
func runSeed(ctx context.Context, pkg, secretsDir string, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, "go", "run", pkg, "-env-file", "env/development.yml")
	cmd.Env = append(os.Environ(), "SECRETS_DIR="+secretsDir, "SHOP_ENV=development")
	cmd.Stdout, cmd.Stderr = stdout, stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
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
