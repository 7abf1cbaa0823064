// Command buildcheck proves that `faas-cli up` cannot fail on a build we never
// tried: it shrinkwraps every shop-go function of the stack file exactly as
// `faas-cli build --shrinkwrap` does, plus the template's starter handler
// (what `faas-cli new --lang shop-go` creates), and runs in each build context
// the RUN steps of the template Dockerfile's build stage after `COPY . .`
// (gofmt gate, vet, short tests, build). It also builds every connector
// image's build stage (connectors/<name>/Dockerfile) the same way, in a
// context made of the project's go.mod, go.sum, internal/ and connectors/.
//
//	go run ./cmd/buildcheck [-stack stack.yml] [-only name,...] [-j 2] [-build ./build] [-starter=true] [-connectors=true]
//
// In -only, a connector is named connector/<name>.
//
// It exits 1 when any function fails, after printing each failure's output
// and a summary line per function.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/openfaas/go-sdk/builder"

	"github.com/shopfaas/shop/dev/buildcheck"
	"github.com/shopfaas/shop/dev/stackfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed, err := run(ctx, os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildcheck:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// run parses args, checks the selected functions and writes the report to
// out. It reports failed when any function failed, and an error when the
// check could not run at all.
func run(ctx context.Context, args []string, out io.Writer) (failed bool, err error) {
	fs := flag.NewFlagSet("buildcheck", flag.ContinueOnError)
	stackPath := fs.String("stack", "stack.yml", "stack file; handler, template and copy paths are relative to its folder")
	only := fs.String("only", "", "comma-separated function names to check (default: every shop-go function)")
	parallel := fs.Int("j", 2, "build contexts checked at once")
	buildDir := fs.String("build", builder.DefaultBuildDir, "directory for the build contexts, relative to the stack file's folder")
	starter := fs.Bool("starter", true, "also check the template's starter handler as "+buildcheck.StarterName)
	withConnectors := fs.Bool("connectors", true, "also check the build stage of every connectors/<name>/Dockerfile")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *parallel < 1 {
		return false, fmt.Errorf("-j must be at least 1")
	}
	abs, err := filepath.Abs(*stackPath)
	if err != nil {
		return false, err
	}
	// faas-cli resolves handler, template/ and configuration.copy against the
	// working directory; run where the stack file is.
	if err := os.Chdir(filepath.Dir(abs)); err != nil {
		return false, err
	}
	s, err := stackfile.Load(abs)
	if err != nil {
		return false, err
	}
	var names, connectorNames []string
	if *only != "" {
		for n := range strings.SplitSeq(*only, ",") {
			n = strings.TrimSpace(n)
			if c, ok := strings.CutPrefix(n, "connector/"); ok {
				connectorNames = append(connectorNames, c)
			} else if n != "" {
				names = append(names, n)
			}
		}
	}
	var connectors []buildcheck.Connector
	if *withConnectors && (*only == "" || len(connectorNames) > 0) {
		if connectors, err = buildcheck.FindConnectors(".", connectorNames); err != nil {
			return false, err
		}
	}
	var targets []buildcheck.Target
	if *only == "" || len(names) > 0 {
		if targets, err = buildcheck.Targets(s, names); err != nil {
			return false, err
		}
		if *starter && (len(names) == 0 || slices.Contains(names, buildcheck.StarterName)) {
			targets = append(targets, buildcheck.Starter(builder.DefaultTemplateDir))
		}
		if len(targets) == 0 {
			return false, fmt.Errorf("no %s function to check", buildcheck.Lang)
		}
	}

	fmt.Fprintf(out, "buildcheck: %d build contexts in %s, %d at a time\n", len(targets)+len(connectors), *buildDir, *parallel)
	start := time.Now()
	opts := buildcheck.Options{
		BuildDir: *buildDir,
		Copy:     s.StackConfiguration.CopyExtraPaths,
		Parallel: *parallel,
		Progress: func(r buildcheck.Result) {
			fmt.Fprintf(out, "  %-4s %s (%s)\n", status(r), r.Name, r.Duration.Round(100*time.Millisecond))
		},
	}
	results := buildcheck.Check(ctx, opts, targets)
	if len(connectors) > 0 {
		wd, err := os.Getwd()
		if err != nil {
			return false, err
		}
		results = append(results, buildcheck.CheckConnectors(ctx, opts, wd, connectors)...)
	}

	for _, r := range results {
		if r.OK() {
			continue
		}
		failed = true
		fmt.Fprintf(out, "\n--- FAIL %s in %s\nstep: %s\nerror: %v\n", r.Name, r.Context, r.Step, r.Err)
		if r.Output != "" {
			fmt.Fprintf(out, "%s\n", strings.TrimRight(r.Output, "\n"))
		}
	}
	fmt.Fprintf(out, "\nsummary (%s):\n", time.Since(start).Round(100*time.Millisecond))
	for _, r := range results {
		fmt.Fprintf(out, "  %-4s %-28s %s\n", status(r), r.Name, r.Duration.Round(100*time.Millisecond))
	}
	return failed, nil
}

func status(r buildcheck.Result) string {
	if r.OK() {
		return "ok"
	}
	return "FAIL"
}
