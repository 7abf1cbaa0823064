package pgtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/proctest"
)

// PgBouncer starts a real PgBouncer in transaction mode in front of the
// test's PostgreSQL server, on a free loopback port, for as long as the test
// runs, and returns rawURL (a database on that server) rewritten to go
// through it, with query added to the URL's query string (for instance
// "default_query_exec_mode=exec"). users are the roles that may log in
// through it (PgBouncer checks its own list, even where the server trusts
// every role); rawURL's own user always may.
//
// It needs the pgbouncer binary (Debian: apt-get install pgbouncer). Without
// it the test fails (skipped with -short).
func PgBouncer(tb testing.TB, rawURL, query string, users ...string) string {
	tb.Helper()
	// Debian installs it in /usr/sbin, on root's PATH only.
	bin := proctest.Binary(tb, "Debian: apt-get install pgbouncer", "pgbouncer", "/usr/sbin/pgbouncer")
	cc, err := pgx.ParseConfig(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	port := freePort(tb)
	dir := tb.TempDir()
	var list strings.Builder
	for _, u := range append([]string{cc.User}, users...) {
		fmt.Fprintf(&list, "%q \"\"\n", u)
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%d
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = 4
max_client_conn = 100
ignore_startup_parameters = extra_float_digits
`, cc.Host, cc.Port, port, filepath.Join(dir, "users.txt"))
	for name, text := range map[string]string{"users.txt": list.String(), "pgbouncer.ini": ini} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...) // it refuses to run as root
	}
	out, exited := proctest.Start(tb, exec.Command(bin, args...))
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select { // first: another process may have taken the port meanwhile
		case <-exited:
			tb.Fatalf("pgbouncer exited: %s", out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pgbouncer did not listen on %s within 10 s: %v\n%s", addr, err, out.String())
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	u.Host = addr
	if query != "" {
		u.RawQuery = strings.TrimPrefix(u.RawQuery+"&"+query, "&")
	}
	return u.String()
}

// freePort is a loopback TCP port nothing listens on at the moment.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
