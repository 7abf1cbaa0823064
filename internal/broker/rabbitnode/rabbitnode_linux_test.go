package rabbitnode_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/broker/rabbitnode"
	"github.com/shopfaas/shop/internal/proctest"
)

// nodeDirEnv, set, makes TestHelperProcess start a node in that directory.
const nodeDirEnv = "RABBITNODE_HELPER_DIR"

// TestHelperProcess is not a test: run again by TestANodeDiesWithTheProcessThatStartedIt
// with nodeDirEnv set, the test binary starts a node, says "ready" and waits
// to be killed. Without nodeDirEnv it returns.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(nodeDirEnv)
	if dir == "" {
		return
	}
	if _, err := rabbitnode.Start(context.Background(), rabbitnode.Options{Dir: dir}); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("ready")
	time.Sleep(10 * time.Minute)
}

// TestANodeDiesWithTheProcessThatStartedIt: a private node (its Erlang VM)
// does not outlive a test or chaos run that is killed (SIGKILL: no Close
// runs). Until 2026-12-05 the VM ran as the child of rabbitmq-server's
// shell, and ran on.
func TestANodeDiesWithTheProcessThatStartedIt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a RabbitMQ node; -short was asked for")
	}
	dir := t.TempDir()
	parent := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	parent.Env = append(os.Environ(), nodeDirEnv+"="+dir)
	exited := proctest.StartReady(t, parent)
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	vm, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !proctest.Running(vm) {
		t.Fatalf("the node's pid file says %q (%v), not a running process", b, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(vm, syscall.SIGKILL) })

	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !proctest.Exits(vm, 10*time.Second) {
		t.Fatalf("the node's VM (pid %d) still runs 10 s after the process that started it was killed", vm)
	}
}
