package proctest

import (
	"time"

	"github.com/shopfaas/shop/internal/childproc"
)

// Running reports whether process pid runs, from /proc: a zombie (one that
// died, left to an init that does not reap it) counts as gone.
func Running(pid int) bool {
	st, ok := childproc.ReadStat(pid)
	return ok && st.State != "Z"
}

// Exits reports whether process pid has stopped running (Running) within d.
func Exits(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); Running(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// ChildrenOf lists the processes whose parent is pid, from /proc.
func ChildrenOf(pid int) []int {
	var children []int
	pids, _ := childproc.Processes()
	for _, p := range pids {
		if st, ok := childproc.ReadStat(p); ok && st.PPID == pid {
			children = append(children, p)
		}
	}
	return children
}
