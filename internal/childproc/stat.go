package childproc

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Stat is what the kernel tells of a process in /proc/<pid>/stat (Linux).
type Stat struct {
	State string // R, S, D, T, Z (a zombie: dead, not yet reaped), ...
	PPID  int    // its parent
	PGID  int    // its process group
}

// ReadStat reads process pid's Stat; false when the process is gone, or
// where there is no /proc to tell.
func ReadStat(pid int) (Stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, false
	}
	// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return Stat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return Stat{}, false
	}
	return Stat{State: f[0], PPID: ppid, PGID: pgid}, true
}

// Processes lists the pids in /proc.
func Processes() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
