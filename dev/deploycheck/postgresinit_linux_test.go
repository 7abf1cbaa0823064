package deploycheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/childproc"
	"github.com/shopfaas/shop/internal/proctest"
)

// clusterHelperEnv, set, makes TestPrivateClusterHelperProcess start a
// private cluster.
const clusterHelperEnv = "DEPLOYCHECK_CLUSTER_HELPER"

// TestPrivateClusterHelperProcess is not a test: run again by
// TestAPrivateClusterDiesWithTheTestProcess with clusterHelperEnv set, the
// test binary starts a private cluster as a test does, says "ready" and
// waits to be killed. Without clusterHelperEnv it returns.
func TestPrivateClusterHelperProcess(t *testing.T) {
	if os.Getenv(clusterHelperEnv) == "" {
		return
	}
	startPrivateCluster(t)
	fmt.Println("ready")
	time.Sleep(10 * time.Minute)
}

// A test binary killed while a private cluster runs (by its -timeout, or
// SIGKILL: no cleanup runs) leaves no PostgreSQL behind: its postmaster and
// every process of the postmaster's group are gone soon after. Until
// 2026-12-06 `pg_ctl start` detached the postmaster, which served on.
func TestAPrivateClusterDiesWithTheTestProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	// The helper's temporary directories (its template's, its cluster's)
	// in one the postgres user can enter, removed here: the helper's own
	// cleanup never runs.
	tmp, err := os.MkdirTemp("", "deploycheck-killed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestPrivateClusterHelperProcess$")
	parent.Env = append(os.Environ(), clusterHelperEnv+"=1", "TMPDIR="+tmp)
	exited := proctest.StartReady(t, parent)
	pidFiles, _ := filepath.Glob(filepath.Join(tmp, "pg-init-*", "data", "postmaster.pid"))
	if len(pidFiles) != 1 {
		t.Fatalf("the helper's clusters' postmaster.pid files: %q, want one", pidFiles)
	}
	b, err := os.ReadFile(pidFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || !proctest.Running(postmaster) {
		t.Fatalf("%s says %q (%v), not a running process", pidFiles[0], first, err)
	}
	// Should it outlive the helper, it is stopped here (its backends
	// follow the postmaster).
	t.Cleanup(func() { _ = syscall.Kill(postmaster, syscall.SIGKILL) })

	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !proctest.Exits(postmaster, 10*time.Second) {
		t.Fatalf("the postmaster (pid %d) still runs 10 s after the test process that started it was killed", postmaster)
	}
	for deadline := time.Now().Add(10 * time.Second); childproc.GroupAlive(postmaster); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("processes of the postmaster's group (%d) still run 10 s after it exited", postmaster)
		}
	}
}
