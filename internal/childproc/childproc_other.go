//go:build !linux

package childproc

import "os/exec"

// startAndWait starts cmd and waits for it: no parent-death signal here.
// atExit, if not nil, runs once cmd has exited and been reaped.
func startAndWait(cmd *exec.Cmd, atExit func(), started, exited chan<- error) {
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	err := cmd.Wait()
	if atExit != nil {
		atExit()
	}
	exited <- err
}
