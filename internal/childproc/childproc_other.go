//go:build !linux

package childproc

import "os/exec"

// startAndWait starts cmd and waits for it: no parent-death signal here.
func startAndWait(cmd *exec.Cmd, started, exited chan<- error) {
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	exited <- cmd.Wait()
}
