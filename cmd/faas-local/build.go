package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal"
)

// builder builds the programs the runtime runs, with progress on stdout.
type builder struct {
	root   string // module root
	bin    string // where binaries go
	stdout io.Writer
}

// binaries are the built programs.
type binaries struct {
	functions  string                // the multi-call binary
	connectors []faaslocal.Connector // the connectors that exist
	seed       string                // the seed program, "" when disabled
}

// buildAll builds cmd/shop-functions, every requested connector that has a
// directory under connectors/ (others are skipped with a notice) and the
// seed program.
func (b builder) buildAll(ctx context.Context, o options) (binaries, error) {
	var out binaries
	if err := os.MkdirAll(b.bin, 0o700); err != nil {
		return out, err
	}
	out.functions = filepath.Join(b.bin, "shop-functions")
	if err := b.build(ctx, "./cmd/shop-functions", out.functions, "functions"); err != nil {
		return out, err
	}
	for _, name := range o.Connectors {
		if m, _ := filepath.Glob(filepath.Join(b.root, "connectors", name, "*.go")); len(m) == 0 {
			fmt.Fprintf(b.stdout, "connector %s: no connectors/%s yet, skipped\n", name, name)
			continue
		}
		path := filepath.Join(b.bin, name)
		if err := b.build(ctx, "./connectors/"+name, path, "connector "+name); err != nil {
			return out, err
		}
		out.connectors = append(out.connectors, faaslocal.Connector{Name: name, Path: path})
	}
	if o.Seed != "" {
		out.seed = filepath.Join(b.bin, "seed")
		if err := b.build(ctx, o.Seed, out.seed, "seed"); err != nil {
			return out, err
		}
	}
	return out, nil
}

// build runs go build for pkg into out (replaced only when the build
// succeeded), showing progress.
func (b builder) build(ctx context.Context, pkg, out, what string) error {
	fmt.Fprintf(b.stdout, "building %s… (go build %s -o %s %s)\n", what, strings.Join(faaslocal.BuildFlags, " "), out, pkg)
	start := time.Now()
	tmp := out + ".tmp" + strconv.Itoa(os.Getpid())
	if err := faaslocal.GoBuild(ctx, b.root, pkg, tmp, b.stdout); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("install %s: %w", out, err)
	}
	fmt.Fprintf(b.stdout, "built %s in %s\n", what, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// runSeed runs the seed program with the development environment file and
// the runtime's secrets, so the admin account matches the admin-* secrets.
func runSeed(ctx context.Context, seed, root, secretsDir string, getenv func(string) string, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, seed, "-env-file", "env/development.yml")
	cmd.Dir = root
	cmd.Env = append(faaslocal.HostEnv(getenv), "SECRETS_DIR="+secretsDir, "SHOP_ENV=development")
	cmd.Stdout, cmd.Stderr = stdout, stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}
