package proctest

import (
	"os/exec"
	"testing"
)

// Binary returns the path of the first of names found (a bare name on PATH, a
// path as it is). A test that needs a tool fails when none is installed,
// naming install (the command that installs it), and is skipped only when
// -short was asked for: a suite that did not run never looks green (.ci/run
// installs every tool the tests need).
func Binary(tb testing.TB, install string, names ...string) string {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("needs %s; -short was asked for", names[0])
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	tb.Fatalf("none of %q is installed: %s (.ci/run installs it), or run the tests with -short to skip this one", names, install)
	return ""
}
