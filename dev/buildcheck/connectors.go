package buildcheck

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/openfaas/go-sdk/builder"
)

// ConnectorsDir is the folder, relative to the project directory, that holds
// one folder per connector, each with its own Dockerfile.
const ConnectorsDir = "connectors"

// ConnectorContextPaths are the project paths a connector image's build
// context holds. The images are built from the project directory
// (`docker build -f connectors/<name>/Dockerfile .`) and each
// connectors/<name>/Dockerfile.dockerignore keeps exactly these paths, so the
// check builds in the same files as the image.
func ConnectorContextPaths() []string {
	return []string{"go.mod", "go.sum", "internal", ConnectorsDir}
}

// Connector is one connector image to check.
type Connector struct {
	// Name is the connector's folder name under ConnectorsDir.
	Name string
	// Dockerfile is the Dockerfile's path relative to the project directory.
	Dockerfile string
}

// FindConnectors returns every connector of the project directory that has a
// Dockerfile, sorted by name, restricted to only when it is not empty; naming
// a connector without a Dockerfile is an error. A project without connectors
// yields none and no error.
func FindConnectors(projectDir string, only []string) ([]Connector, error) {
	entries, err := os.ReadDir(filepath.Join(projectDir, ConnectorsDir))
	if errors.Is(err, fs.ErrNotExist) {
		entries = nil
	} else if err != nil {
		return nil, err
	}
	var out []Connector
	for _, e := range entries {
		if !e.IsDir() || (len(only) > 0 && !slices.Contains(only, e.Name())) {
			continue
		}
		df := filepath.Join(ConnectorsDir, e.Name(), "Dockerfile")
		if _, err := os.Stat(filepath.Join(projectDir, df)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out = append(out, Connector{Name: e.Name(), Dockerfile: df})
	}
	var errs []error
	for _, name := range only {
		if !slices.ContainsFunc(out, func(c Connector) bool { return c.Name == name }) {
			errs = append(errs, fmt.Errorf("connector %s: no %s/%s/Dockerfile", name, ConnectorsDir, name))
		}
	}
	return out, errors.Join(errs...)
}

// CheckConnectors prepares, for each connector, a build context in
// <opts.BuildDir>/connectors/<name> made of the project's
// ConnectorContextPaths (what `docker build -f connectors/<name>/Dockerfile .`
// sees) and runs there the RUN steps of the Dockerfile's build stage after
// `COPY . .`, at most opts.Parallel connectors at a time. opts.Copy is
// ignored. It returns one result per connector in the order given, named
// "connector/<name>", and stops starting new ones when ctx is done.
func CheckConnectors(ctx context.Context, opts Options, projectDir string, connectors []Connector) []Result {
	if opts.BuildDir == "" {
		opts.BuildDir = builder.DefaultBuildDir
	}
	if !filepath.IsAbs(opts.BuildDir) {
		opts.BuildDir = filepath.Join(projectDir, opts.BuildDir)
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	results := make([]Result, len(connectors))
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, c := range connectors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = Result{Name: "connector/" + c.Name, Step: "start", Err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			results[i] = checkConnector(ctx, opts, projectDir, c)
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

func checkConnector(ctx context.Context, opts Options, projectDir string, c Connector) (res Result) {
	start := time.Now()
	res.Name = "connector/" + c.Name
	defer func() { res.Duration = time.Since(start) }()
	if err := ctx.Err(); err != nil {
		res.Step, res.Err = "start", err
		return res
	}
	dir := filepath.Join(opts.BuildDir, "connectors", c.Name)
	res.Context = dir
	if err := prepareContext(projectDir, dir, ConnectorContextPaths()); err != nil {
		res.Step, res.Err = "prepare context", err
		return res
	}
	res.Step, res.Output, res.Err = runDockerfileSteps(ctx, opts, dir, c.Dockerfile)
	return res
}

// prepareContext replaces dir with a copy of the given project paths (files
// or folders). Symbolic links are refused, as in a Docker build context they
// would not point into the image.
func prepareContext(projectDir, dir string, paths []string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, p := range paths {
		src := filepath.Join(projectDir, p)
		info, err := os.Lstat(src)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, p)
		if info.IsDir() {
			if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
				return fmt.Errorf("copy %s: %w", p, err)
			}
			continue
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("copy %s: not a regular file", p)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
