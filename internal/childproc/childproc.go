// Package childproc starts a child process that does not outlive this one:
// on Linux the kernel kills it when this process dies, even by SIGKILL, which
// runs no cleanup (a CI job stopped, a test binary killed by its timeout).
// Tests' helper processes and the local runtime's function processes start
// through it.
package childproc

import "os/exec"

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
