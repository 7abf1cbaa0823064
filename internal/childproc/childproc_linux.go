//go:build linux

package childproc

import (
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// startAndWait forks cmd from a thread of its own and keeps that thread, and
// so the parent-death signal, until cmd has exited and been reaped. The
// goroutine never unlocks: the runtime ends the thread with it, and no other
// goroutine ever ran on it that could have forked a child of its own there.
//
// atExit, if not nil, runs once cmd has exited, before cmd.Wait reaps it.
func startAndWait(cmd *exec.Cmd, atExit func(), started, exited chan<- error) {
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
	if atExit != nil {
		// WNOWAIT: wait for the exit and leave the child a zombie for
		// cmd.Wait to reap.
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
		atExit()
	}
	exited <- cmd.Wait()
}
