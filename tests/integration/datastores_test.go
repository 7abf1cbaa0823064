package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/dev/deploycheck"
	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// TestDatastoreAlertsReadWhatTheExportersServe runs Debian's
// postgres_exporter, redis_exporter and node_exporter, and Debian's
// Prometheus scraping them through the jobs of monitoring/prometheus.yml
// that scrape the compose services postgres-exporter, redis-exporter and
// node-exporter, with monitoring/rules loaded. One postgres_exporter logs in as a role that has pg_monitor and
// nothing else, as shop_monitor (env/faasd/postgres-init), to a database of
// the test's own on the machine's PostgreSQL; another points at a port where
// nothing listens. One redis_exporter reads a Redis of the test's own (2 MiB
// of maxmemory, volatile-ttl as in docker-compose.yml, one save point) that
// requires a password, which the exporter reads from a password file as
// docker-compose.yml configures it (the JSON map docs/deploy-faasd.md
// renders from redis-exporter-password; here the default user's, the
// exporter's own ACL user being dev/deploycheck
// TestTheRedisExporterServesWhatTheAlertsReadAsItsUser's); another a closed port. node_exporter runs with the compose service's
// flags (startNodeExporter). Every signal of the shop-datastores alerts must
// return series (a metric name or label the exporters do not serve fails
// it), and: PostgreSQLDown and RedisDown are active for the closed ports
// only; a transaction another role leaves open shows its age (pg_monitor
// reads it); a real deadlock activates PostgreSQLDeadlocks for its database;
// writes past maxmemory activate RedisEvictingKeys and RedisMemoryNearLimit;
// a background save that fails activates RedisPersistenceFailing, and Redis
// then refuses writes (MISCONF), which is why that alert pages; the host
// short of memory with a process killed for it activates HostMemoryLow and
// HostOOMKills. Active means
// pending or firing: the for durations are promtool's tests. Every panel of
// the shop-datastores Grafana dashboard returns series too.
func TestDatastoreAlertsReadWhatTheExportersServe(t *testing.T) {
	bin := prometheusBinary(t)
	pgExporter := exporterBinary(t, "prometheus-postgres-exporter", "postgres_exporter")
	redisExporter := exporterBinary(t, "prometheus-redis-exporter", "redis_exporter")
	nodeExporter := exporterBinary(t, "prometheus-node-exporter", "node_exporter")
	ctx := context.Background()

	// PostgreSQL: a database of the test's own, a monitoring role with
	// pg_monitor only, and an application role.
	dbURL := pgtest.NewDatabase(t)
	cc, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	database := cc.Database
	// The database's random name (test_<hex>) names the test's roles too.
	suffix := strings.TrimPrefix(database, "test_")
	monitor, app := "test_role_monitor_"+suffix, "test_role_app_"+suffix
	admin, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	// Registered after pgtest's, this cleanup runs before it (and after
	// those of the connections below), on a connection of its own (the
	// test's may have broken meanwhile): it drops the database, whose grant
	// goes with it, and then the roles, which own nothing else.
	t.Cleanup(func() {
		_ = admin.Close(context.Background())
		c, err := pgx.Connect(context.Background(), pgtest.ServerURL())
		if err != nil {
			t.Errorf("drop the test's roles %s, %s: %v", monitor, app, err)
			return
		}
		defer c.Close(context.Background())
		for _, q := range []string{"DROP DATABASE IF EXISTS " + database + " WITH (FORCE)",
			"DROP ROLE IF EXISTS " + monitor, "DROP ROLE IF EXISTS " + app} {
			if _, err := c.Exec(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	for _, q := range []string{
		"CREATE ROLE " + monitor + " LOGIN IN ROLE pg_monitor",
		"CREATE ROLE " + app + " LOGIN",
		"GRANT ALL ON DATABASE " + database + " TO " + app,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	owner, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, `CREATE TABLE pair (id int PRIMARY KEY, v int NOT NULL);
		INSERT INTO pair VALUES (1, 0), (2, 0); GRANT ALL ON pair TO `+app); err != nil {
		t.Fatal(err)
	}
	_ = owner.Close(ctx)
	appConn := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, roleURL(t, dbURL, app))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}

	// Redis: a server of the test's own, with docker-compose.yml's
	// eviction policy but 2 MiB of maxmemory, and one save point (RDB, no
	// AOF) in a directory of its own.
	dataDir := filepath.Join(t.TempDir(), "redis")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	const redisPassword = "0123abcd"
	redisAddr := redisconntest.Server(t, redisPassword, "--dir", dataDir,
		"--save", "3600 1", "--appendonly", "no", "--maxmemory", "2mb", "--maxmemory-policy", "volatile-ttl")
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, Password: redisPassword})
	t.Cleanup(func() { _ = rdb.Close() })
	// Every other address the test listens on, chosen at once so that no
	// two are the same; closed is one where nothing listens.
	addrs := freeAddrs(t, 7)
	closed, pgGood, pgBad, redisGood, redisBad, nodeAddr, promAddr :=
		addrs[0], addrs[1], addrs[2], addrs[3], addrs[4], addrs[5], addrs[6]

	// The exporters: one of each against its server, one against a port
	// where nothing listens.
	// The good one is configured as docker-compose.yml configures the
	// image: address, user and a password file (the server trusts loopback).
	passwordFile := filepath.Join(t.TempDir(), "postgres-monitor-password")
	if err := os.WriteFile(passwordFile, []byte("unused\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, []string{"DATA_SOURCE_URI=" + net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + database + "?sslmode=disable",
		"DATA_SOURCE_USER=" + monitor, "DATA_SOURCE_PASS_FILE=" + passwordFile}, pgExporter, "--web.listen-address="+pgGood)
	startProcess(t, []string{"DATA_SOURCE_NAME=postgresql://" + monitor + "@" + closed + "/" + database + "?sslmode=disable"},
		pgExporter, "--web.listen-address="+pgBad)
	redisPasswords := filepath.Join(t.TempDir(), "redis-exporter-passwords.json")
	if err := os.WriteFile(redisPasswords, []byte(`{"redis://`+redisAddr+`":"`+redisPassword+`"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, nil, redisExporter, "--redis.addr=redis://"+redisAddr, "--redis.password-file="+redisPasswords,
		"--connection-timeout=5s", "--web.listen-address="+redisGood)
	startProcess(t, nil, redisExporter, "--redis.addr=redis://"+closed, "--connection-timeout=5s", "--web.listen-address="+redisBad)

	procfs := startNodeExporter(t, nodeExporter, nodeAddr)

	prom := runPrometheusOn(t, bin, promAddr, scrapeConfig(t, map[string][]string{
		"postgres-exporter": {pgGood, pgBad},
		"redis-exporter":    {redisGood, redisBad},
		"node-exporter":     {nodeAddr},
	}))
	waitTargets(t, prom, map[string]int{"postgres": 2, "redis": 2, "node": 1})
	// The counters' first samples, before the deadlock and the evictions:
	// increase() needs a sample from before each.
	waitSeries(t, prom, `pg_stat_database_deadlocks{job="postgres", datname="`+database+`"} == 0`)
	waitSeries(t, prom, `redis_evicted_keys_total{job="redis"} == 0`)
	waitSeries(t, prom, `node_vmstat_oom_kill{job="node"} == 0`)

	// The host short of memory (256 MiB of 8 GiB available) and a process
	// killed for it.
	writeHostMemory(t, procfs, 256<<10, 1)

	// A transaction of the application role, left open: the monitoring
	// role sees its age only through pg_monitor (pg_read_all_stats). It
	// reads only: a writing one would hold back the outboxes of every test
	// running beside this one (the relay's snapshot is cluster-wide).
	held := appConn()
	for _, q := range []string{"BEGIN", "SELECT 1"} {
		if _, err := held.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	waitSeries(t, prom, `max by (datname) (pg_stat_activity_max_tx_duration{job="postgres", datname="`+database+`"}) > 2`)
	if _, err := held.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}

	// A real deadlock: each transaction holds one row and asks for the other's.
	if err := deadlock(ctx, appConn(), appConn()); err != nil {
		t.Fatal(err)
	}

	// Writes past maxmemory: every key expires (volatile-ttl evicts only
	// those), 1 KiB each, 4 MiB in all.
	value := strings.Repeat("x", 1024)
	for i := range 4096 {
		if err := rdb.Set(ctx, fmt.Sprintf("cache:%d", i), value, time.Hour).Err(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n >= 4096 {
		t.Fatalf("redis holds %d keys (%v): nothing was evicted", n, err)
	}

	for _, c := range []struct{ alert, label string }{
		{"PostgreSQLDown", "instance=" + pgBad},
		{"RedisDown", "instance=" + redisBad},
		{"RedisEvictingKeys", "instance=" + redisGood},
		{"RedisMemoryNearLimit", "instance=" + redisGood},
		{"HostMemoryLow", "instance=" + nodeAddr},
		{"HostOOMKills", "instance=" + nodeAddr},
	} {
		waitActive(t, prom, c.alert, c.label)
	}
	// Other tests' databases share the server: the deadlock's must be
	// among the alert's instances, whatever else is.
	waitActiveWith(t, prom, "PostgreSQLDeadlocks", "datname", database)

	// A background save that fails (its directory is gone): the alert, and
	// Redis refusing writes until a save succeeds.
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	if err := rdb.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the background save fails", func() bool {
		info, err := rdb.Info(ctx, "persistence").Result()
		return err == nil && strings.Contains(info, "rdb_last_bgsave_status:err")
	})
	if err := rdb.Set(ctx, "cart:after", "1", time.Hour).Err(); err == nil || !strings.HasPrefix(err.Error(), "MISCONF") {
		t.Errorf("a write after a failed save: %v, want MISCONF", err)
	}
	waitActive(t, prom, "RedisPersistenceFailing", "instance="+redisGood)

	// A scrape that fails under load marks its target's series stale until
	// the next: each check may take a few rounds.
	waitChecks(t, prom, append(ruleChecks(t, datastoresGroup), dashboardChecks(t, "shop-datastores.json")...))
}

// deadlock runs two transactions on a and b that each update one row of
// pair and then the other's, and returns nil once PostgreSQL failed one of
// them with deadlock_detected (40P01); both are rolled back. Each
// connection is used by one goroutine at a time: a's second update runs in
// its own and is waited for before a is touched again.
func deadlock(ctx context.Context, a, b *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, step := range []struct {
		c  *pgx.Conn
		id int
	}{{a, 1}, {b, 2}} {
		if _, err := step.c.Exec(ctx, "BEGIN"); err != nil {
			return err
		}
		if _, err := step.c.Exec(ctx, "UPDATE pair SET v = v + 1 WHERE id = $1", step.id); err != nil {
			return err
		}
	}
	second := make(chan error, 1)
	go func() {
		_, err := a.Exec(ctx, "UPDATE pair SET v = v + 1 WHERE id = 2") // waits for b
		second <- err
	}()
	time.Sleep(200 * time.Millisecond)
	// Whichever waits last closes the cycle and either may be the one
	// failed (its error releases its locks, which lets the other go on).
	_, errB := b.Exec(ctx, "UPDATE pair SET v = v + 1 WHERE id = 1")
	if errB != nil {
		_, _ = b.Exec(ctx, "ROLLBACK")
	}
	errA := <-second
	for _, c := range []*pgx.Conn{a, b} {
		_, _ = c.Exec(ctx, "ROLLBACK")
	}
	var pgErr *pgconn.PgError
	for _, err := range []error{errA, errB} {
		if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
			return nil
		}
	}
	return fmt.Errorf("no deadlock detected: %v, %v", errA, errB)
}

// waitSeries waits until query returns series.
func waitSeries(t *testing.T, p *prometheus, query string) {
	t.Helper()
	waitFor(t, 2*time.Minute, "series for "+query, func() bool {
		n, err := p.series(query)
		return err == nil && n > 0
	})
}

// waitActiveWith waits until one of the alert's active instances has
// label name=value.
func waitActiveWith(t *testing.T, p *prometheus, alert, name, value string) {
	t.Helper()
	var instances []map[string]string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		var err error
		if instances, err = p.alerts(alert); err != nil {
			t.Fatal(err)
		}
		for _, labels := range instances {
			if labels[name] == value {
				return
			}
		}
	}
	t.Errorf("%s: active %v, none with %s=%s", alert, instances, name, value)
}

// startNodeExporter runs bin with the flags of docker-compose.yml's
// node-exporter service, listening on addr. In the
// container its filesystem collector reports the mounts of its own mount
// table: the data directory bound at /var/lib/faasd/data/postgres, and
// others the rules and the panel leave out (/run, /etc/hosts). Here a procfs
// of the test's own lists the data directory's mount only, at the compose
// file's target under a rootfs of the test's own (a directory: statfs
// reports the filesystem it is on), so the exporter labels it as the
// container's would be. That procfs also holds the host's meminfo and
// vmstat (writeHostMemory), which a container shares with its host; it is
// returned for the test to change them.
func startNodeExporter(t *testing.T, bin, addr string) (procfs string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(runtimetest.Root(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	compose, err := deploycheck.LoadCompose(raw)
	if err != nil {
		t.Fatal(err)
	}
	svc, ok := compose.Services["node-exporter"]
	if !ok || len(svc.Command) == 0 || len(svc.Volumes) != 1 {
		t.Fatalf("docker-compose.yml: no node-exporter service with a command and one volume: %+v", svc)
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "root")
	procfs = filepath.Join(dir, "proc")
	mount := filepath.Join(rootfs, svc.Volumes[0].Target)
	for _, d := range []string{mount, filepath.Join(procfs, "1")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// /proc/1/mounts for node_exporter 1.5 (Debian), mountinfo for later ones.
	for name, line := range map[string]string{
		"mounts":    "/dev/vda " + mount + " ext4 ro,relatime 0 0\n",
		"mountinfo": "36 35 254:0 / " + mount + " ro,relatime shared:1 - ext4 /dev/vda rw\n",
	} {
		if err := os.WriteFile(filepath.Join(procfs, "1", name), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The host's memory: 8 GiB with 3 GiB available, no OOM kill yet.
	writeHostMemory(t, procfs, 3<<20, 0)
	var args []string
	for _, a := range svc.Command[1:] {
		if !strings.HasPrefix(a, "--web.listen-address=") {
			args = append(args, a)
		}
	}
	args = append(args, "--web.listen-address="+addr, "--path.rootfs="+rootfs, "--path.procfs="+procfs)
	startProcess(t, nil, bin, args...)
	return procfs
}

// writeHostMemory writes the meminfo and vmstat files of procfs as the
// kernel shows them: 8 GiB of RAM with availableKiB available, and
// oomKills processes killed for memory since boot. node_exporter reads
// them again at every scrape.
func writeHostMemory(t *testing.T, procfs string, availableKiB, oomKills int) {
	t.Helper()
	const totalKiB = 8 << 20
	files := map[string]string{
		"meminfo": fmt.Sprintf("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\nBuffers:          65536 kB\nCached:         %d kB\nSwapTotal:            0 kB\nSwapFree:             0 kB\n",
			totalKiB, availableKiB/2, availableKiB, availableKiB/2),
		"vmstat": fmt.Sprintf("nr_free_pages 262144\npgpgin 1000\npgpgout 2000\npswpin 0\npswpout 0\npgfault 123456\npgmajfault 12\noom_kill %d\n", oomKills),
	}
	for name, text := range files {
		// Written aside and renamed: a scrape never reads half a file.
		tmp := filepath.Join(procfs, name+".new")
		if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(procfs, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// exporterBinary finds the first of names on PATH (Debian's package names
// first): missing, the test fails (skipped with -short).
func exporterBinary(t *testing.T, names ...string) string {
	t.Helper()
	return proctest.Binary(t, "Debian: apt-get install prometheus-postgres-exporter prometheus-redis-exporter prometheus-node-exporter redis-server", names...)
}

// startProcess starts bin with args and env added to the test's
// environment, and kills it when the test ends. Its output is kept (out),
// and logged if the test failed; done is closed once it has exited.
func startProcess(t *testing.T, env []string, bin string, args ...string) (out *runtimetest.Output, done <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return proctest.Start(t, cmd)
}

// freeAddrs are n different loopback addresses no one listens on right now
// (each held until all are chosen).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

// roleURL is rawURL logged in as role (the test server trusts loopback).
func roleURL(t *testing.T, rawURL, role string) string {
	t.Helper()
	cc, err := pgx.ParseConfig(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgresql://%s@%s:%d/%s?sslmode=disable", role, cc.Host, cc.Port, cc.Database)
}
