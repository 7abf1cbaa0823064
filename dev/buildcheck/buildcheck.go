package buildcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openfaas/go-sdk/builder"
	"github.com/openfaas/go-sdk/stack"
)

// Lang is the template the check knows how to run.
const Lang = "shop-go"

// StarterName is the pseudo-function that stands for `faas-cli new --lang
// shop-go`: the template's own function/ folder, shrinkwrapped like any other.
const StarterName = "shop-go-starter"

// Target is one function to shrinkwrap and build.
type Target struct {
	// Name is the function name, also the build context's folder name.
	Name string
	// Handler is the handler folder, relative to the project directory.
	Handler string
	// Lang is the template name (the folder under template/).
	Lang string
}

// Options configure a check. The process's working directory must be the
// project directory (the stack file's folder), because faas-cli and
// go-sdk's builder resolve handler, template and copy paths against it.
type Options struct {
	// BuildDir receives the build contexts (default ./build, as faas-cli).
	BuildDir string
	// Copy lists the stack's configuration.copy paths.
	Copy []string
	// Parallel bounds how many contexts are built at once (default 2).
	Parallel int
	// Env is the environment of the steps (default os.Environ()); the check
	// adds the build stage's ENV, TARGETOS=linux, TARGETARCH=amd64 and
	// CGO_ENABLED=0. GOFLAGS, GOCACHE and GOMODCACHE pass through, so the
	// host's module and build caches serve every context.
	Env []string
	// Progress, when not nil, is called as each target finishes.
	Progress func(Result)
}

// Result is the outcome of one target.
type Result struct {
	// Name is the target's name.
	Name string
	// Context is the build context's path.
	Context string
	// Step is the failing step (shrinkwrap, or a RUN command); empty when OK.
	Step string
	// Output is the failing step's combined output.
	Output string
	// Err is nil when every step succeeded.
	Err error
	// Duration is the time spent on the target.
	Duration time.Duration
}

// OK reports whether the target built.
func (r Result) OK() bool { return r.Err == nil }

// Targets returns the stack's functions written in Lang, sorted by name,
// restricted to only when it is not empty. Naming a function that is not in
// the stack, or not written in Lang, is an error.
func Targets(s *stack.Services, only []string) ([]Target, error) {
	var out []Target
	for name, fn := range s.Functions {
		if fn.Language != Lang {
			continue
		}
		if len(only) > 0 && !slices.Contains(only, name) {
			continue
		}
		out = append(out, Target{Name: name, Handler: fn.Handler, Lang: fn.Language})
	}
	var errs []error
	for _, name := range only {
		if !slices.ContainsFunc(out, func(t Target) bool { return t.Name == name }) && name != StarterName {
			errs = append(errs, fmt.Errorf("-only %s: no %s function of that name in the stack", name, Lang))
		}
	}
	slices.SortFunc(out, func(a, b Target) int { return strings.Compare(a.Name, b.Name) })
	return out, errors.Join(errs...)
}

// Starter is the template's starter handler as a target.
func Starter(templateDir string) Target {
	return Target{Name: StarterName, Handler: filepath.Join(templateDir, Lang, "function"), Lang: Lang}
}

// Check shrinkwraps and builds every target, at most opts.Parallel at a time,
// and returns one result per target in the order given. It stops starting
// new targets when ctx is done.
func Check(ctx context.Context, opts Options, targets []Target) []Result {
	if opts.BuildDir == "" {
		opts.BuildDir = builder.DefaultBuildDir
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	results := make([]Result, len(targets))
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = Result{Name: t.Name, Step: "start", Err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			results[i] = checkOne(ctx, opts, t)
			if opts.Progress != nil {
				mu.Lock()
				opts.Progress(results[i])
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return results
}

func checkOne(ctx context.Context, opts Options, t Target) (res Result) {
	start := time.Now()
	res.Name = t.Name
	defer func() { res.Duration = time.Since(start) }()
	if err := ctx.Err(); err != nil {
		res.Step, res.Err = "start", err
		return res
	}
	dir, err := builder.CreateBuildContext(t.Name, t.Handler, t.Lang, opts.Copy, builder.WithBuildDir(opts.BuildDir))
	res.Context = dir
	if err != nil {
		res.Step, res.Err = "shrinkwrap", err
		return res
	}
	res.Step, res.Output, res.Err = runDockerfileSteps(ctx, opts, dir, "Dockerfile")
	return res
}

// runDockerfileSteps runs, in the build context dir, the RUN steps of the
// Dockerfile's build stage that follow `COPY . .`, as the image build would.
// It reports the failing step (or what kept the steps from running), its
// output and the error.
func runDockerfileSteps(ctx context.Context, opts Options, dir, dockerfile string) (step, output string, err error) {
	df, err := os.ReadFile(filepath.Join(dir, dockerfile))
	if err != nil {
		return "read Dockerfile", "", err
	}
	stage, err := ParseDockerfile(df)
	if err != nil {
		return "parse Dockerfile", "", err
	}
	env := StepEnv(opts.Env, stage)
	for _, step := range stage.Steps {
		if out, err := run(ctx, dir, env, step); err != nil {
			return step, out, err
		}
	}
	return "", "", nil
}

// StepEnv is the environment the steps run with: base, then the stage's ENV,
// then the build arguments BuildKit would give a linux/amd64 build. PWD is
// dropped so the shell sets it to the context.
func StepEnv(base []string, stage Stage) []string {
	env := slices.DeleteFunc(slices.Clone(base), func(kv string) bool { return strings.HasPrefix(kv, "PWD=") })
	env = append(env, stage.Env...)
	return append(env,
		"TARGETPLATFORM=linux/amd64", "BUILDPLATFORM=linux/amd64",
		"TARGETOS=linux", "TARGETARCH=amd64", "CGO_ENABLED=0")
}

// run executes step with sh -c in dir, as the image's WORKDIR holds the context.
func run(ctx context.Context, dir string, env []string, step string) (string, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", step)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
