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

// TestACrashedNodeLeavesNoProcessBehind: the processes the node's Erlang
// VM started (erl_child_setup, and the port programs it runs, such as
// inet_gethost) do not outlive the VM when it crashes, killed alone with no
// Stop or Kill. They are collected from /proc while the node runs, with
// their start times, so a pid reused after one exited is not taken for it.
// Each sets up a session of its own, outside the VM's process group: a
// signal to the group would not reach them; they exit on their own when
// the VM's end of their pipe closes.
func TestACrashedNodeLeavesNoProcessBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a RabbitMQ node; -short was asked for")
	}
	dir := t.TempDir()
	// A node not ready in time fails the test with its own message, not go
	// test's panic at -timeout.
	node, err := rabbitnode.Start(proctest.DeadlineContext(t, proctest.CleanupMargin), rabbitnode.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	proctest.CloseAtEnd(t, node)
	vm := vmPID(t, dir)
	descendants := descendantsOf(vm)
	if len(descendants) == 0 {
		t.Fatalf("the node's VM (pid %d) runs no process of its own: nothing to watch", vm)
	}
	for _, d := range descendants {
		t.Logf("the VM's descendant %d: %s", d.pid, procStat(d.pid))
	}

	if err := syscall.Kill(vm, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, d := range descendants {
		if !exits(d, 10*time.Second) {
			t.Errorf("the node VM's descendant %d (%s) still runs 10 s after the VM (pid %d) crashed", d.pid, d.comm, vm)
		}
	}
}

// TestACrashedNodeStartsAgainWithoutAStop: a node whose VM exited on its
// own (killed alone, as in a crash) is not "already running": Start boots it
// again. Until 2026-12-06 only Stop, Kill or Close forgot the exited VM.
func TestACrashedNodeStartsAgainWithoutAStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a RabbitMQ node; -short was asked for")
	}
	dir := t.TempDir()
	ctx := proctest.DeadlineContext(t, proctest.CleanupMargin)
	node, err := rabbitnode.Start(ctx, rabbitnode.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Kill() })
	vm := vmPID(t, dir)
	if err := syscall.Kill(vm, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !proctest.Exits(vm, 10*time.Second) {
		t.Fatalf("the node's VM (pid %d) still runs 10 s after SIGKILL", vm)
	}
	// The VM is reaped, and the node told, just after it stops running.
	var started error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if started = node.Start(ctx); started == nil || time.Now().After(deadline) {
			break
		}
	}
	if started != nil {
		t.Fatalf("Start after the node's VM crashed: %v", started)
	}
}

// process is a process as it was seen: a pid reused by a later process is
// told apart by its start time.
type process struct {
	pid   int
	comm  string
	start uint64
}

// descendantsOf lists pid's children, their children and so on, from /proc.
func descendantsOf(pid int) []process {
	var all []process
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		for _, c := range proctest.ChildrenOf(queue[0]) {
			if st, ok := childproc.ReadStat(c); ok {
				all = append(all, process{pid: c, comm: st.Comm, start: st.Start})
				queue = append(queue, c)
			}
		}
	}
	return all
}

// exits reports whether p has stopped running within d: gone, a zombie, or
// its pid now another process's.
func exits(p process, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		st, ok := childproc.ReadStat(p.pid)
		if !ok || st.State == "Z" || st.Start != p.start {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// procStat is /proc/pid/stat, for the test's log.
func procStat(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return strings.TrimSpace(string(b))
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
