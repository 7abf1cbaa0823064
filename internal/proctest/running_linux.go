package proctest

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Running reports whether process pid runs, from /proc: a zombie (one that
// died, left to an init that does not reap it) counts as gone.
func Running(pid int) bool {
	state, _, ok := stat(pid)
	return ok && state != "Z"
}

// ChildrenOf lists the processes whose parent is pid, from /proc.
func ChildrenOf(pid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := stat(p); ok && ppid == pid {
			pids = append(pids, p)
		}
	}
	return pids
}

// stat reads a process's state and parent from /proc/pid/stat.
func stat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}
