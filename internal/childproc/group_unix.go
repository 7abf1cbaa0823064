//go:build unix

package childproc

import (
	"errors"
	"os/exec"
	"syscall"
)

// GroupAlive reports whether process group pgid has a member that is not a
// zombie (a zombie left for whoever adopted it to reap holds nothing);
// where there is no /proc to tell, whether the group exists at all.
func GroupAlive(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return false
	}
	pids, err := Processes()
	if err != nil {
		return true
	}
	for _, pid := range pids {
		if st, ok := ReadStat(pid); ok && st.PGID == pgid && st.State != "Z" {
			return true
		}
	}
	return false
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
