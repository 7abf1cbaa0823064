package bench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on every Linux this runs on).
const clockTick = 10 * time.Millisecond

// procGroup names a set of processes whose CPU time is summed: pids is asked
// at the start and at the end of the measured window.
type procGroup struct {
	name string
	pids func() []int
	// partOf names the group this one is a share of (the PostgreSQL
	// backends of one database among all the run's backends): it is printed
	// under that group and left out of the sum.
	partOf string
}

// cpuSnapshot is the CPU time (user + system) and the context switches of
// every process of every group, by group and pid, and the machine's busy
// time.
type cpuSnapshot struct {
	at       time.Time
	procs    map[string]map[int]time.Duration
	switches map[string]map[int]int64
	machine  time.Duration
}

// cpuSample reads /proc for every group. A process counts with what it
// used since it started (its own threads only: the benchmark process is the
// parent of every function process, the postmaster of every backend); the delta of two snapshots
// counts only what processes alive at the second one used in between (a
// process that exits inside the window takes its time with it: the
// scenarios keep their processes running).
func cpuSample(groups []procGroup) cpuSnapshot {
	snap := cpuSnapshot{at: time.Now(), procs: map[string]map[int]time.Duration{},
		switches: map[string]map[int]int64{}, machine: machineBusy()}
	for _, g := range groups {
		m, sw := map[int]time.Duration{}, map[int]int64{}
		for _, pid := range g.pids() {
			if t, ok := procCPU(pid); ok {
				m[pid] = t
				sw[pid] = procSwitches(pid)
			}
		}
		snap.procs[g.name], snap.switches[g.name] = m, sw
	}
	return snap
}

// cpuUse is each group's CPU time and context switches between two
// snapshots.
type cpuUse struct {
	wall     time.Duration
	machine  time.Duration
	groups   []string
	by       map[string]time.Duration
	switches map[string]int64
	partOf   map[string]string // procGroup.partOf of the groups that are shares
}

func cpuDelta(a, b cpuSnapshot, groups []procGroup) cpuUse {
	u := cpuUse{wall: b.at.Sub(a.at), machine: b.machine - a.machine, by: map[string]time.Duration{},
		switches: map[string]int64{}, partOf: map[string]string{}}
	for _, g := range groups {
		u.groups = append(u.groups, g.name)
		if g.partOf != "" {
			u.partOf[g.name] = g.partOf
		}
		var d time.Duration
		for pid, t := range b.procs[g.name] {
			d += t - a.procs[g.name][pid]
		}
		u.by[g.name] = d
		var n int64
		for pid, c := range b.switches[g.name] {
			n += c - a.switches[g.name][pid]
		}
		u.switches[g.name] = n
	}
	return u
}

// total is the CPU time of every group but the shares of another.
func (u cpuUse) total() time.Duration {
	var t time.Duration
	for g, d := range u.by {
		if u.partOf[g] == "" {
			t += d
		}
	}
	return t
}

// totalSwitches is total for the context switches.
func (u cpuUse) totalSwitches() int64 {
	var n int64
	for g, c := range u.switches {
		if u.partOf[g] == "" {
			n += c
		}
	}
	return n
}

// procCPU is utime + stime of one process, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; fields after its ')' count from 3.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * clockTick, true
}

// procSwitches is how many times the threads of one process gave up or lost
// the CPU (voluntary_ctxt_switches + nonvoluntary_ctxt_switches of every
// /proc/<pid>/task/<tid>/status): a thread that blocks on a socket, a lock or
// a futex and is woken again counts one. Threads that have exited take their
// count with them (Go's threads and PostgreSQL's backends live on).
func procSwitches(pid int) int64 {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, t := range tasks {
		raw, err := os.ReadFile(filepath.Join(dir, t.Name(), "status"))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(raw), "\n") {
			name, v, ok := strings.Cut(line, ":")
			if ok && (name == "voluntary_ctxt_switches" || name == "nonvoluntary_ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// machineBusy is the machine's non-idle CPU time over all cores, from /proc/stat.
func machineBusy() time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * clockTick
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// functionPids are the replica processes of the named functions.
func functionPids(rt *runtimetest.Runtime, names ...string) func() []int {
	return func() []int {
		var out []int
		for _, n := range names {
			for _, r := range rt.Replicas(n) {
				out = append(out, r.PID)
			}
		}
		return out
	}
}

// connectorPids are the processes of a connector.
func connectorPids(rt *runtimetest.Runtime, name string) func() []int {
	return func() []int {
		var out []int
		for _, r := range rt.ConnectorReplicas(name) {
			out = append(out, r.PID)
		}
		return out
	}
}

// pgCluster finds the PostgreSQL cluster the benchmark's databases live on
// (the parent of a backend of conn) and splits its processes into the
// backends serving the named databases and the rest (background writers,
// WAL writer, autovacuum, other users' sessions).
type pgCluster struct {
	conn      *pgx.Conn
	databases map[string]string // database name → label (orders, inventory, …)
}

// pids are the backends of the named databases (ours) or the cluster's other
// processes, the postmaster included.
func (c *pgCluster) pids(ours bool) func() []int {
	return c.backends(func(database string) bool { return (c.databases[database] != "") == ours }, !ours)
}

// pidsOf are the backends of the database labelled label.
func (c *pgCluster) pidsOf(label string) func() []int {
	return c.backends(func(database string) bool { return database != "" && c.databases[database] == label }, false)
}

// pgBackends is the group of every backend of the run's databases.
const pgBackends = "PostgreSQL backends of this run"

// The other groups named in more than one place.
const (
	pgRestGroup = "PostgreSQL background + other sessions"
	benchGroup  = "bench process (loadgen + gateway + edge)"
	rabbitGroup = "RabbitMQ (machine's node, shared)"
)

// shares are one group per label: the backends of that database, each a
// share of pgBackends.
func (c *pgCluster) shares(labels ...string) []procGroup {
	var out []procGroup
	for _, l := range labels {
		out = append(out, procGroup{name: "  of which the " + l + " database", pids: c.pidsOf(l),
			partOf: pgBackends})
	}
	return out
}

// labels are the labels of the named databases, sorted.
func (c *pgCluster) labels() []string {
	return slices.Sorted(maps.Values(c.databases))
}

// backends are the postmaster's children whose database matches (and the
// postmaster itself with postmaster).
func (c *pgCluster) backends(match func(database string) bool, postmaster bool) func() []int {
	return func() []int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var self int
		if err := c.conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&self); err != nil {
			return nil
		}
		post := parentPid(self)
		rows, err := c.conn.Query(ctx, `SELECT pid, coalesce(datname, '') FROM pg_stat_activity`)
		if err != nil {
			return nil
		}
		db := map[int]string{}
		for rows.Next() {
			var pid int
			var name string
			if rows.Scan(&pid, &name) == nil {
				db[pid] = name
			}
		}
		rows.Close()
		var out []int
		if postmaster && post > 0 {
			out = append(out, post)
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", post, post))
		for _, f := range strings.Fields(string(children)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid == self {
				continue
			}
			if match(db[pid]) {
				out = append(out, pid)
			}
		}
		return out
	}
}

// parentPid is field 4 of /proc/<pid>/stat.
func parentPid(pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// rabbitPids are the machine's RabbitMQ node (the beam.smp whose home is
// /var/lib/rabbitmq; private test nodes of other suites are not counted).
func rabbitPids() []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		raw, err := os.ReadFile(d)
		if err != nil || !strings.Contains(string(raw), "beam.smp") || !strings.Contains(string(raw), "/var/lib/rabbitmq") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// redisGroup is the Redis server rdb talks to, found by the process id it
// reports (INFO server): the machine's server, shared with whatever else
// uses it while the benchmark runs, as RabbitMQ's node is.
func redisGroup(tb testing.TB, rdb *redis.Client) procGroup {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		tb.Fatalf("redis INFO server: %v", err)
	}
	pid := 0
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err = strconv.Atoi(v)
			if err != nil {
				tb.Fatalf("redis INFO server: process_id %q: %v", v, err)
			}
		}
	}
	if pid == 0 {
		tb.Fatal("redis INFO server names no process_id")
	}
	return procGroup{name: "Redis (machine's server, shared)", pids: func() []int { return []int{pid} }}
}

// selfPid is the benchmark process: the load generator and the local
// runtime's gateway and edge, which run inside it.
func selfPid() []int { return []int{os.Getpid()} }

// cpuColumn is one scenario's CPU use and the number of orders it completed.
type cpuColumn struct {
	name   string
	orders int
	use    cpuUse
}

// printCPU writes CPU milliseconds, then context switches, per order by
// process group, one column per scenario; groups a scenario did not measure
// print "-".
func printCPU(w io.Writer, cols []cpuColumn) {
	if len(cols) == 0 {
		return
	}
	seen := map[string]bool{}
	var groups []string
	parts := map[string][]string{} // a group's shares, printed under it
	for _, c := range cols {
		for _, g := range c.use.groups {
			if seen[g] {
				continue
			}
			seen[g] = true
			if of := c.use.partOf[g]; of != "" {
				parts[of] = append(parts[of], g)
			} else {
				groups = append(groups, g)
			}
		}
	}
	var ordered []string
	for _, g := range groups {
		ordered = append(ordered, g)
		ordered = append(ordered, parts[g]...)
	}
	groups = ordered
	per := func(c cpuColumn, d time.Duration) string { return perOrder(c, float64(d.Microseconds())/1000, 2) }
	printTable(w, "CPU ms per order or read (from /proc)", cols, groups, func(c cpuColumn, g string) (string, bool) {
		d, ok := c.use.by[g]
		return per(c, d), ok
	})
	rows := []struct {
		name string
		f    func(cpuColumn) time.Duration
	}{
		{"sum of the above", func(c cpuColumn) time.Duration { return c.use.total() }},
		{"rest of the machine (other users, noise)", func(c cpuColumn) time.Duration { return max(c.use.machine-c.use.total(), 0) }},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-44s", r.name)
		for _, c := range cols {
			fmt.Fprintf(w, " %14s", per(c, r.f(c)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-44s", "orders or reads / CPU busy % of the machine")
	for _, c := range cols {
		busy := 0.0
		if c.use.wall > 0 {
			busy = 100 * c.use.machine.Seconds() / c.use.wall.Seconds() / float64(numCPU())
		}
		fmt.Fprintf(w, " %14s", fmt.Sprintf("%d/%.0f%%", c.orders, busy))
	}
	fmt.Fprintln(w)

	// The same processes' context switches: on these virtual machines a
	// thread's sleep and wake-up (a hop's socket read, a commit's wait) is
	// what a checkout's CPU goes into, and each process on its path adds its
	// own.
	perN := func(c cpuColumn, n int64) string { return perOrder(c, float64(n), 1) }
	printTable(w, "context switches per order or read", cols, groups, func(c cpuColumn, g string) (string, bool) {
		n, ok := c.use.switches[g]
		return perN(c, n), ok
	})
	fmt.Fprintf(w, "%-44s", "sum of the above")
	for _, c := range cols {
		fmt.Fprintf(w, " %14s", perN(c, c.use.totalSwitches()))
	}
	fmt.Fprintln(w)
}

// printTable writes a table headed by title and the columns' names, then one
// row per group, one cell per column: cell's value, or "-" where the column
// did not measure the group.
func printTable(w io.Writer, title string, cols []cpuColumn, groups []string, cell func(cpuColumn, string) (string, bool)) {
	fmt.Fprintf(w, "\n%-44s", title)
	for _, c := range cols {
		fmt.Fprintf(w, " %14s", c.name)
	}
	fmt.Fprintln(w)
	for _, g := range groups {
		fmt.Fprintf(w, "%-44s", g)
		for _, c := range cols {
			v, ok := cell(c, g)
			if !ok {
				v = "-"
			}
			fmt.Fprintf(w, " %14s", v)
		}
		fmt.Fprintln(w)
	}
}

// perOrder is v divided by the column's orders, with prec decimals; "-" for
// a column without orders.
func perOrder(c cpuColumn, v float64, prec int) string {
	if c.orders == 0 {
		return "-"
	}
	return strconv.FormatFloat(v/float64(c.orders), 'f', prec, 64)
}

// numCPU counts the cpuN lines of /proc/stat (the machine's, not the
// process's affinity).
func numCPU() int {
	raw, _ := os.ReadFile("/proc/stat")
	n := 0
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.HasPrefix(line, "cpu") && !strings.HasPrefix(line, "cpu ") {
			n++
		}
	}
	return max(n, 1)
}
