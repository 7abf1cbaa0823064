package supervisor

import "syscall"

// SetKillGroup replaces how replicas signal their process groups, until
// restore is called.
func SetKillGroup(f func(pgid int, sig syscall.Signal) error) (restore func()) {
	old := killGroup
	killGroup = f
	return func() { killGroup = old }
}
