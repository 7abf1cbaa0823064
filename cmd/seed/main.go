// Command seed creates the development data that `make run` promises, after
// the local runtime is up: the admin account from the admin-email and
// admin-password secrets (files in $SECRETS_DIR) and, later, the demo catalog.
// Every step is idempotent, so seeding on every start is safe.
//
//	go run ./cmd/seed [-env-file env/development.yml]
//
// Each step reads what it needs from the environment (USERS_DATABASE_URL, …);
// -env-file supplies values the process environment does not set, in the
// environment_file format of stack.yml. Any other argument is refused before
// a step runs.
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
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

// Step is one idempotent seeding task. Run reads its own configuration from
// getenv, so a step that is not needed never demands settings; running a step
// twice leaves the same data as running it once.
type Step struct {
	// Name identifies the step in logs and errors.
	Name string
	// Run performs the step.
	Run func(ctx context.Context, getenv func(string) string, log *slog.Logger) error
}

// steps are run in order; a later step may rely on an earlier one (the demo
// catalog step belongs after the admin).
func steps() []Step {
	return []Step{
		{Name: "admin", Run: seedAdmin},
		{Name: "demo-catalog", Run: seedDemoCatalog},
	}
}

// timeout bounds the whole seeding, so `make run` never hangs on it.
const timeout = 2 * time.Minute

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stdout)
	envFile := fs.String("env-file", "", "environment_file (YAML with an environment map) for variables the process does not set")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h: the usage is printed, nothing else asked for
		}
		return err
	}
	if fs.NArg() > 0 {
		// Ignored, an env file named without -env-file would leave every
		// step reading the process environment and its defaults alone.
		return fmt.Errorf("unexpected argument %q: seed takes flags only (an env file is -env-file FILE)", fs.Arg(0))
	}
	if *envFile != "" {
		fallback, err := readEnvFile(*envFile)
		if err != nil {
			return err
		}
		getenv = withFallback(getenv, fallback)
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("program", "seed")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, s := range steps() {
		start := time.Now()
		if err := s.Run(ctx, getenv, log.With("step", s.Name)); err != nil {
			return fmt.Errorf("step %s: %w", s.Name, err)
		}
		log.Info("step done", "step", s.Name, "elapsed", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}

// readEnvFile reads a stack.yml environment_file: a YAML document with an
// environment map.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	var doc struct {
		Environment map[string]string `yaml:"environment"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	if doc.Environment == nil {
		return nil, errors.New("env file " + path + " has no environment map")
	}
	return doc.Environment, nil
}

// withFallback reads getenv first and fallback for variables getenv leaves empty.
func withFallback(getenv func(string) string, fallback map[string]string) func(string) string {
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return fallback[k]
	}
}
