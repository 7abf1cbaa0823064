package supervisor

import (
	"syscall"
	"time"
)

// SetKillGroup replaces how replicas signal their process groups, until
// restore is called.
func SetKillGroup(f func(pgid int, sig syscall.Signal) error) (restore func()) {
	old := killGroup
	killGroup = f
	return func() { killGroup = old }
}

// SetMinBackoff replaces the first restart's wait, until restore is called:
// call it before the supervisor starts, and restore it after it closed.
func SetMinBackoff(d time.Duration) (restore func()) {
	old := minBackoff
	minBackoff = d
	return func() { minBackoff = old }
}

// SetBeforeKillSignal runs f in Kill once it has its target's process group,
// just before the signal, until restore is called.
func SetBeforeKillSignal(f func()) (restore func()) {
	old := beforeKillSignal
	beforeKillSignal = f
	return func() { beforeKillSignal = old }
}
