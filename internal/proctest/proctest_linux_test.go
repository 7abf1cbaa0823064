package proctest_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/proctest"
)

// helperEnv selects what the test binary does when run again as a helper
// process by TestHelperProcess.
const helperEnv = "PROCTEST_HELPER"

// TestHelperProcess is not a test: run again by the tests below with
// helperEnv set, the test binary acts as a test that starts a helper (the
// "parent"), or as that helper (the "child"). Without helperEnv it returns.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "child":
		time.Sleep(10 * time.Minute)
	case "chatty":
		fmt.Println("ready")
		for { // on a closed pipe the runtime ends the process (SIGPIPE)
			time.Sleep(10 * time.Millisecond)
			fmt.Println("still here")
		}
	case "parent":
		// Started from a goroutine locked to its thread that ends at once,
		// as a test's goroutine that locked its thread and returned would:
		// the child must live on, until this process dies.
		var tid int
		var exited <-chan struct{}
		for started := false; !started; {
			done := make(chan bool)
			go func() {
				runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
				if syscall.Gettid() == os.Getpid() {
					// The main thread, which the runtime parks instead of
					// ending: keep it, and try on another.
					done <- false
					select {}
				}
				_, exited = proctest.Start(t, helperCommand("child"))
				tid = syscall.Gettid()
				done <- true
			}()
			started = <-done
		}
		for deadline := time.Now().Add(10 * time.Second); threadAlive(tid); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				fmt.Println("thread", tid, "still running")
				os.Exit(1)
			}
		}
		// The kernel signalled the child as the thread ended, if it did.
		select {
		case <-exited:
			fmt.Println("child died with the thread that started it")
			os.Exit(1)
		case <-time.After(time.Second):
		}
		fmt.Println("ready")
		time.Sleep(10 * time.Minute)
	}
}

func helperCommand(role string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	return cmd
}

// threadAlive reports whether thread tid of this process still runs.
func threadAlive(tid int) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid))
	return err == nil
}

// TestAHelperDiesWithTheTestProcess: a helper started by a test that is
// killed (SIGKILL: no cleanup runs) dies with it, and not before, when the
// thread that started it ends.
func TestAHelperDiesWithTheTestProcess(t *testing.T) {
	parent := helperCommand("parent")
	exited := proctest.StartReady(t, parent)
	children := proctest.ChildrenOf(parent.Process.Pid)
	if len(children) != 1 {
		t.Fatalf("the parent has children %v, want one", children)
	}
	child := children[0]
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })

	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !proctest.Exits(child, 5*time.Second) {
		t.Fatalf("the helper (pid %d) still runs 5 s after the test process that started it was killed", child)
	}
}

// A parent that goes on printing after its ready line lives on: StartReady
// keeps reading its standard output (closed, the pipe killed it).
func TestStartReadyKeepsTheParentsOutputOpen(t *testing.T) {
	parent := helperCommand("chatty")
	exited := proctest.StartReady(t, parent)
	select {
	case <-exited:
		t.Fatalf("the parent exited after its ready line: %v", parent.ProcessState)
	case <-time.After(500 * time.Millisecond):
	}
}
