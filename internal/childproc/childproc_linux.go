//go:build linux

package childproc

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startAndWait forks cmd from a thread of its own and keeps that thread, and
// so the parent-death signal, until cmd has exited and been reaped. The
// goroutine never unlocks: the runtime ends the thread with it, and no other
// goroutine ever ran on it that could have forked a child of its own there.
func startAndWait(cmd *exec.Cmd, started, exited chan<- error) {
	runtime.LockOSThread()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	exited <- cmd.Wait()
}
