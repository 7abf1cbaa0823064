package faaslocal

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// BuildFlags are the go build flags of every program the local runtime runs:
// -trimpath, as the template's Dockerfile and make buildcheck build, so that
// the build cache serves a function's context, make run, the tests and a
// fresh clone alike (no compile depends on the checkout's path).
var BuildFlags = []string{"-trimpath"}

// BuildEnv is added to the environment of those builds: static binaries, as
// the images are built (CGO_ENABLED=0 in the template's and connectors'
// Dockerfiles), so no libc is mapped into each of the ~33 function processes
// (1.3 MiB less RSS apiece, docs/performance.md, "Memory").
var BuildEnv = []string{"CGO_ENABLED=0"}

// GoBuild builds the main package pkg of the module at root into out with
// BuildFlags and BuildEnv, writing go's output to w.
func GoBuild(ctx context.Context, root, pkg, out string, w io.Writer) error {
	args := append([]string{"build"}, BuildFlags...)
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", out, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), BuildEnv...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}
