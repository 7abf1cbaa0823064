// Package redisconntest starts private redis-server processes for tests that
// need a Redis of their own: one that requires a password (the machine's
// Redis on 127.0.0.1:6379 has none and is shared), or one configured as
// docker-compose.yml configures the deployment's.
package redisconntest

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server starts redis-server on a free loopback port for as long as the test
// runs and returns its host:port. With a password the server requires it
// (requirepass: the default user's password), set as docker-compose.yml's
// redis service sets it: the line "requirepass <password>", unquoted, on the server's standard
// input, so it is on no command line. As there, the password must be
// letters and digits only (anything else fails the test: compose refuses to
// start Redis with it). args are added after the defaults (no persistence,
// a data directory of the test's own) and win over them, e.g.
// "--maxmemory", "2mb".
//
// It needs the redis-server binary (Debian: apt-get install redis-server;
// .ci/run installs it): without it the test fails, unless -short was asked
// for. With -short the test is skipped.
func Server(tb testing.TB, password string, args ...string) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts a redis-server of its own; -short was asked for")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server is required: apt-get install -y redis-server (.ci/run installs it): %v", err)
	}
	if strings.Trim(password, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
		tb.Fatalf("redisconntest: a password of letters and digits only, as docker-compose.yml's redis service accepts")
	}
	addr := freeAddr(tb)
	_, port, _ := net.SplitHostPort(addr)
	// "-" reads the configuration from standard input (first or last argument).
	argv := append([]string{"-", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", tb.TempDir()}, args...)
	cmd := exec.Command(bin, argv...)
	if password != "" {
		cmd.Stdin = strings.NewReader("requirepass " + password + "\n")
	} else {
		cmd.Stdin = strings.NewReader("")
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("redis-server on %s:\n%s", addr, out.String())
		}
	})
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			tb.Fatalf("redis-server exited:\n%s", out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			stop()
			tb.Fatalf("redis-server did not answer on %s within 10 s: %v\n%s", addr, err, out.String())
		}
	}
}

// freeAddr is a loopback host:port nothing listens on at the moment.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
