//go:build unix

package childproc

import (
	"errors"
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
