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
	"github.com/shopfaas/shop/internal/childproc"
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
	vm := vmPID(t, dir)
	t.Cleanup(func() { _ = syscall.Kill(vm, syscall.SIGKILL) })

	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !proctest.Exits(vm, 10*time.Second) {
		t.Fatalf("the node's VM (pid %d) still runs 10 s after the process that started it was killed", vm)
	}
}

// TestACrashedNodeTakesItsProcessGroupWithIt: a process of the node's
// process group (as erl_child_setup and port programs are) does not outlive
// the node's VM when the VM crashes, killed alone with no Stop or Kill: it
// is killed as the VM exits, before the VM is reaped, while the group's id
// cannot be another group's (childproc.StartGroup). Until 2026-12-06 the
// group was killed only by Stop or Kill, after the VM was reaped: after a
// crash its processes ran on, and the kill by number could have reached a
// group that had reused the id.
func TestACrashedNodeTakesItsProcessGroupWithIt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a RabbitMQ node; -short was asked for")
	}
	dir := t.TempDir()
	// A node not ready in time fails the test with its own message, not go
	// test's panic at -timeout.
	node, err := rabbitnode.Start(proctest.DeadlineContext(t, 30*time.Second), rabbitnode.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	vm := vmPID(t, dir)
	if st, ok := childproc.ReadStat(vm); !ok || st.PGID != vm {
		t.Fatalf("the node's VM (pid %d) does not lead a process group (process group %d, %v)", vm, st.PGID, ok)
	}
	member := exec.Command("sleep", "600")
	member.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: vm}
	_, exited := proctest.Start(t, member)

	if err := syscall.Kill(vm, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("a process of the node's group (pid %d) still runs 10 s after the node's VM (pid %d) crashed",
			member.Process.Pid, vm)
	}
}

// vmPID returns the pid of the node's Erlang VM, from the pid file in the
// node's directory dir, and fails unless that process runs.
func vmPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	vm, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !proctest.Running(vm) {
		t.Fatalf("the node's pid file says %q (%v), not a running process", b, err)
	}
	return vm
}
