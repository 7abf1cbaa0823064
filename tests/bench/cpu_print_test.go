package bench

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A database's share of the PostgreSQL backends is printed under them and
// left out of the sum, so the sum still counts every process once: in the
// CPU table and in the context switches'.
func TestSharesPrintUnderTheirGroupOutsideTheSum(t *testing.T) {
	const backends = pgBackends
	groups := []procGroup{
		{name: "function create-order"},
		{name: "  of which the orders database", partOf: backends},
		{name: backends},
		{name: "bench process (loadgen + gateway + edge)"},
	}
	a := cpuSnapshot{procs: map[string]map[int]time.Duration{}, switches: map[string]map[int]int64{
		"function create-order": {1: 100},
		backends:                {7: 50, 8: 50},
	}}
	b := cpuSnapshot{at: a.at.Add(time.Second), machine: 10 * time.Second, procs: map[string]map[int]time.Duration{
		"function create-order":                    {1: 2 * time.Second},
		"  of which the orders database":           {7: time.Second},
		backends:                                   {7: time.Second, 8: 2 * time.Second},
		"bench process (loadgen + gateway + edge)": {2: time.Second},
	}, switches: map[string]map[int]int64{
		"function create-order":                    {1: 30100},
		"  of which the orders database":           {7: 10000},
		backends:                                   {7: 10050, 8: 20050},
		"bench process (loadgen + gateway + edge)": {2: 5000},
	}}
	u := cpuDelta(a, b, groups)
	if got := u.total(); got != 6*time.Second {
		t.Fatalf("total %s, want 6s: a share counted twice", got)
	}
	var out strings.Builder
	printCPU(&out, []cpuColumn{{name: "checkout 8w", orders: 1000, use: u}})
	lines := strings.Split(out.String(), "\n")
	at := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("no line %q in\n%s", prefix, out.String())
		return -1
	}
	if at("  of which the orders database") != at(backends)+1 {
		t.Errorf("the share is not printed under its group:\n%s", out.String())
	}
	if l := lines[at("sum of the above")]; !strings.HasSuffix(l, " 6.00") {
		t.Errorf("sum line %q, want 6.00 ms per order", l)
	}
	// The context switches: counted since the first snapshot, the share
	// left out of the sum too (30,000 + 30,000 + 5,000 over 1,000 orders).
	switches := at("context switches per order")
	var sum string
	for _, l := range lines[switches:] {
		if strings.HasPrefix(l, "sum of the above") {
			sum = l
			break
		}
	}
	if !strings.HasSuffix(sum, " 65.0") {
		t.Errorf("switches sum line %q, want 65.0 per order in\n%s", sum, out.String())
	}
}

// The Redis group is the server's own process: the one whose pid the server
// reports, a redis-server.
func TestRedisGroupIsTheServersProcess(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	g := redisGroup(t, rdb)
	pids := g.pids()
	if len(pids) != 1 {
		t.Fatalf("pids %v, want one", pids)
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pids[0]) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(comm)); got != "redis-server" {
		t.Fatalf("pid %d is %q, want redis-server", pids[0], got)
	}
}
