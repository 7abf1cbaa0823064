// Package childproc starts a child process that does not outlive this one:
// on Linux the kernel kills it when this process dies, even by SIGKILL, which
// runs no cleanup (a CI job stopped, a test binary killed by its timeout).
// Tests' helper processes and the local runtime's function processes start
// through it.
package childproc

import (
	"os/exec"
	"syscall"
)

// Start starts cmd and returns a channel that receives cmd.Wait's result
// once cmd has exited. On Linux cmd gets SIGKILL when this process dies, set
// with Pdeathsig on cmd.SysProcAttr (its other fields are kept), and only
// then: the kernel sends it when the thread that forked the child ends
// (go.dev/issue/27505), so the fork runs on a thread that lives until the
// child has been reaped. A process the child forks is not covered; one that
// it execs is. Elsewhere cmd starts as cmd.Start starts it.
//
// The caller must not call cmd.Wait: Start does.
func Start(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go startAndWait(cmd, nil, started, exited)
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// StartGroup is Start for a cmd that leads a process group of its own
// (Setpgid, set here on cmd.SysProcAttr), whose processes may outlive it:
// atExit runs once cmd has exited and, on Linux, before it is reaped. Until
// then cmd's pid, which is the group's id, cannot be given to another
// process, so atExit may signal the group by number
// (syscall.Kill(-pid, sig)) without ever reaching a group that reused the
// id, as a signal sent after the reaping could when no member was left.
// Elsewhere atExit runs after the reaping.
func StartGroup(cmd *exec.Cmd, atExit func()) (<-chan error, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go startAndWait(cmd, atExit, started, exited)
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}
