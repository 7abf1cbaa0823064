package childproc

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Stat is what the kernel tells of a process in /proc/<pid>/stat (Linux).
type Stat struct {
	Comm  string // its command name (the program's, 15 bytes at most, unless it renamed itself)
	State string // R, S, D, T, Z (a zombie: dead, not yet reaped), ...
	PPID  int    // its parent
	PGID  int    // its process group
	// Start is when it started, in clock ticks since the system booted
	// (field 22): as BootTicks counts.
	Start uint64
}

// ReadStat reads process pid's Stat; false when the process is gone, or
// where there is no /proc to tell.
func ReadStat(pid int) (Stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, false
	}
	// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
	open, i := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || i < open {
		return Stat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 { // state is field 3, starttime field 22
		return Stat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	start, err3 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Stat{}, false
	}
	return Stat{Comm: string(b[open+1 : i]), State: f[0], PPID: ppid, PGID: pgid, Start: start}, true
}

// UID is the real user id of process pid, from /proc/<pid>/status, which
// anyone may read (a zombie's too); false when the process is gone, or
// where there is no /proc to tell.
func UID(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			uid, err := strconv.Atoi(f[0])
			return uid, err == nil
		}
	}
	return 0, false
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
