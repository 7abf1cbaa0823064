//go:build linux

package fnserve_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/config"
)

// reservePort holds a loopback port for the test as the local runtime does
// for a function: a socket bound with SO_REUSEPORT that never listens, so
// fnserve's listeners may share the port and no connection queues on it.
func reservePort(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
}

// answeredBy makes a new connection to addr (no keep-alive) and returns
// the body of the answer to GET /who.
func answeredBy(addr string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	res, err := c.Get("http://" + addr + "/who")
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

func named(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }
}

// TestReplicasShareTheServiceAddr: two processes of one function with the
// same SERVICE_ADDR both answer on it; once one is told to stop, it leaves
// the shared address before its drain (while still answering on its own
// address), so every new connection goes to the other; when none is left,
// a connection is refused, which is the caller's signal to use the gateway.
func TestReplicasShareTheServiceAddr(t *testing.T) {
	addr := reservePort(t)
	a := serve(t, map[string]string{"SERVICE_ADDR": addr, "healthcheck_interval": "3s"}, named("a"))
	b := serve(t, map[string]string{"SERVICE_ADDR": addr, "healthcheck_interval": "3s"}, named("b"))

	seen := map[string]int{}
	for range 64 {
		who, err := answeredBy(addr)
		if err != nil {
			t.Fatalf("SERVICE_ADDR %s: %v", addr, err)
		}
		seen[who]++
	}
	if seen["a"] == 0 || seen["b"] == 0 || len(seen) != 2 {
		t.Fatalf("new connections to SERVICE_ADDR answered by %v, want both replicas", seen)
	}

	a.cancel()
	waitDraining(t, a.url)
	if code, body := get(t, a.url+"/who"); code != http.StatusOK || body != "a" {
		t.Fatalf("stopped replica on its own address during the drain: %d %q, want 200 a", code, body)
	}
	for i := range 32 {
		who, err := answeredBy(addr)
		if err != nil || who != "b" {
			t.Fatalf("new connection %d to SERVICE_ADDR after a was stopped: %q %v, want b", i, who, err)
		}
	}

	b.cancel()
	waitDraining(t, b.url)
	if who, err := answeredBy(addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("SERVICE_ADDR with every replica stopping: %q %v, want connection refused", who, err)
	}
}

// TestListensOnlyWhereConfigured: a process opens its own listener and,
// with SERVICE_ADDR set, the shared one; nothing else.
func TestListensOnlyWhereConfigured(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("SERVICE_ADDR set %t", shared), func(t *testing.T) {
			env := map[string]string{}
			var want []int
			if shared {
				env["SERVICE_ADDR"] = reservePort(t)
				want = append(want, port(t, env["SERVICE_ADDR"]))
			}
			before := listening(t)
			srv := serve(t, env, named("f"))
			want = append(want, port(t, strings.TrimPrefix(srv.url, "http://")))
			var opened []int
			for p := range listening(t) {
				if !before[p] {
					opened = append(opened, p)
				}
			}
			if diff := cmp.Diff(want, opened, sortInts); diff != "" {
				t.Errorf("ports the process began to listen on (-want +got):\n%s", diff)
			}
		})
	}
}

var sortInts = cmp.Transformer("sort", func(in []int) map[int]bool {
	m := map[int]bool{}
	for _, v := range in {
		m[v] = true
	}
	return m
})

func port(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// listening lists the TCP ports this process listens on, from the sockets
// among its file descriptors and the kernel's tables of TCP sockets.
func listening(t *testing.T) map[int]bool {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(row)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			_, hex, _ := strings.Cut(f[1], ":")
			p, err := strconv.ParseUint(hex, 16, 16)
			if err != nil {
				t.Fatalf("%s: %q: %v", table, row, err)
			}
			ports[int(p)] = true
		}
	}
	return ports
}

func TestServiceAddrMustBeHostPort(t *testing.T) {
	if _, err := fnserve.LoadConfig(config.Env(map[string]string{"SERVICE_ADDR": "8080"})); err == nil || !strings.Contains(err.Error(), "SERVICE_ADDR") {
		t.Errorf("LoadConfig with SERVICE_ADDR=8080: %v, want an error naming SERVICE_ADDR", err)
	}
}

// TestLoopbackHostOnlyRefusesRebindingPages: with LOOPBACK_HOST_ONLY=true (the
// local runtime sets it) a request whose Host is not a loopback name is
// answered 421 on the function's own port and on the shared SERVICE_ADDR, so
// a DNS-rebinding page cannot log in at login-user's port; loopback names
// pass. Without the variable (production: of-watchdog passes the client's
// Host through) every Host is served.
func TestLoopbackHostOnlyRefusesRebindingPages(t *testing.T) {
	addr := reservePort(t)
	guarded := serve(t, map[string]string{"SERVICE_ADDR": addr, "LOOPBACK_HOST_ONLY": "true"}, named("f"))
	open := serve(t, nil, named("f"))
	status := func(url, host string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url+"/api/v1/auth/login", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	for _, url := range []string{guarded.url, "http://" + addr} {
		port := url[strings.LastIndex(url, ":")+1:]
		for host, want := range map[string]int{
			"rebound.attacker.example:" + port: http.StatusMisdirectedRequest,
			"192.168.1.10:" + port:             http.StatusMisdirectedRequest,
			"127.0.0.1:" + port:                http.StatusOK,
			"localhost:" + port:                http.StatusOK,
			"[::1]:" + port:                    http.StatusOK,
		} {
			if got := status(url, host); got != want {
				t.Errorf("%s with Host %s: %d, want %d", url, host, got, want)
			}
		}
	}
	if got := status(open.url, "rebound.attacker.example"); got != http.StatusOK {
		t.Errorf("without LOOPBACK_HOST_ONLY, Host rebound.attacker.example: %d, want 200 (production passes the client's Host)", got)
	}
}
