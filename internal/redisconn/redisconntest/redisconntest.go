// Package redisconntest starts private redis-server processes for tests that
// need a Redis of their own: one that requires a password (the machine's
// Redis on 127.0.0.1:6379 has none and is shared), or one configured as
// docker-compose.yml configures the deployment's, or one that accepts only
// TLS (TLSServer, tls.go). FromSecret reads a
// process's Redis settings as a function reads them, from a secrets
// directory holding redis-password.
package redisconntest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/redisconn"
)

// Server starts redis-server on a free loopback port for as long as the test
// runs and returns its host:port. With a password the server requires it
// (requirepass: the default user's password, which docker-compose.yml's
// redis service sets with a "user default on >password …" line instead),
// given as that service gives its configuration: the line "requirepass
// <password>", unquoted, on the server's standard input, so it is on no
// command line. As there, the
// password must be letters and digits only (anything else fails the test:
// compose refuses to start Redis with it). args are added after the
// defaults (no persistence, a data directory of the test's own) and win
// over them, e.g. "--maxmemory", "2mb".
//
// It needs the redis-server binary (Debian: apt-get install redis-server;
// .ci/run installs it): without it the test fails, unless -short was asked
// for. With -short the test is skipped.
func Server(tb testing.TB, password string, args ...string) string {
	tb.Helper()
	addr := freeAddr(tb)
	_, port, _ := net.SplitHostPort(addr)
	start(tb, password, []string{"--port", port}, &redis.Options{Addr: addr}, args)
	return addr
}

// start runs redis-server as Server describes, listening on 127.0.0.1 as
// the flags listen say, with args after the defaults, and waits until a
// client with opts (its Password and MaxRetries set here) answers it: the
// start Server and TLSServer share.
func start(tb testing.TB, password string, listen []string, opts *redis.Options, args []string) {
	tb.Helper()
	bin := proctest.Binary(tb, "Debian: apt-get install redis-server", "redis-server")
	if strings.Trim(password, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
		tb.Fatalf("redisconntest: a password of letters and digits only, as docker-compose.yml's redis service accepts")
	}
	// "-" reads the configuration from standard input (first or last argument).
	argv := append([]string{"-", "--bind", "127.0.0.1"}, listen...)
	argv = append(argv, "--save", "", "--appendonly", "no", "--dir", tb.TempDir())
	cmd := exec.Command(bin, append(argv, args...)...)
	cmd.Stdin = strings.NewReader("")
	if password != "" {
		cmd.Stdin = strings.NewReader("requirepass " + password + "\n")
	}
	out, exited := proctest.Start(tb, cmd)
	opts.Password, opts.MaxRetries = password, -1
	awaitPing(tb, opts, out, exited)
}

// awaitPing waits up to 10 s for the redis-server just started to answer a
// client with opts, failing the test if it exits or does not answer.
func awaitPing(tb testing.TB, opts *redis.Options, out *proctest.Output, exited <-chan struct{}) {
	tb.Helper()
	addr := opts.Addr
	rdb := redis.NewClient(opts)
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
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redis-server did not answer on %s within 10 s: %v\n%s", addr, err, out.String())
		}
	}
}

// SetDefaultUser changes, while it runs, the default user of the Redis at
// addr (logged in with password) with ACL SETUSER default rules…, then
// closes every other client's connections (CLIENT KILL TYPE normal), so
// their next commands log in again: "-incr" takes away the user's right to
// INCR, so a client is answered NOPERM for it, as a deployment's ACL can;
// "resetpass", ">new" changes its password under running clients, as a
// rotation on Redis's side does (their logins are then refused: WRONGPASS).
func SetDefaultUser(tb testing.TB, addr, password string, rules ...string) {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1})
	defer rdb.Close()
	args := []any{"ACL", "SETUSER", "default"}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := rdb.Do(context.Background(), args...).Err(); err != nil {
		tb.Fatalf("ACL SETUSER default %v: %v", rules, err)
	}
	if err := rdb.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		tb.Fatalf("CLIENT KILL TYPE normal: %v", err)
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

// FromSecret reads settings with read (redisconn.ConfigFrom, or a store's
// ConfigFrom that calls it) from a configuration whose REDIS_ADDR is addr
// and whose secrets directory holds secret as the redis-password file (no
// file when secret is ""), as a function reads them; any problem the
// configuration collected fails the test.
func FromSecret[T any](tb testing.TB, addr, secret string, read func(*config.Reader) T) T {
	tb.Helper()
	return fromSecrets(tb, map[string]string{"REDIS_ADDR": addr},
		map[string][]byte{redisconn.PasswordSecret: []byte(secret)}, read)
}

// fromSecrets reads settings with read from a configuration whose
// environment is env and whose secrets directory holds files (name to
// content; an empty content writes no file), failing the test on any
// problem the configuration collected: what FromSecret and FromTLSSecrets
// share.
func fromSecrets[T any](tb testing.TB, env map[string]string, files map[string][]byte, read func(*config.Reader) T) T {
	tb.Helper()
	dir := tb.TempDir()
	for name, b := range files {
		if len(b) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	env[config.SecretsDirEnv] = dir
	c := config.New(config.Env(env))
	v := read(c)
	if err := c.Err(); err != nil {
		tb.Fatal(err)
	}
	return v
}

// Clients is the number of connections the Redis at addr (logged in with
// password) has open, besides the one that asks (CLIENT LIST): a test of a
// build that fails counts them before and after, so a client left open is
// seen.
func Clients(tb testing.TB, addr, password string) int {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1, PoolSize: 1})
	defer rdb.Close()
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		tb.Fatalf("CLIENT LIST: %v", err)
	}
	return strings.Count(strings.TrimSpace(list), "\n")
}

// ComposeRules are the ACL rules docker-compose.yml's redis service gives
// user: the words after "user <user> on >$<variable>" on a line of the
// service's command (services.redis.command, decoded as YAML, compose's
// "$$" escaping undone), the configuration it writes to redis-server's
// standard input. A compose file without such a line fails the test.
func ComposeRules(tb testing.TB, user string) []string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("redisconntest: no go.mod above the test's directory")
		}
		dir = parent
	}
	b, err := os.ReadFile(filepath.Join(dir, "docker-compose.yml"))
	if err != nil {
		tb.Fatal(err)
	}
	rules, err := composeRules(b, user)
	if err != nil {
		tb.Fatalf("docker-compose.yml: %v", err)
	}
	return rules
}

// composeRules is ComposeRules of the compose file b.
func composeRules(b []byte, user string) ([]string, error) {
	var compose struct {
		Services map[string]struct {
			// Command is a list of words or one string (compose takes both).
			Command any `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		return nil, err
	}
	var words []string
	switch c := compose.Services["redis"].Command.(type) {
	case string:
		words = []string{c}
	case []any:
		for _, w := range c {
			s, ok := w.(string)
			if !ok {
				return nil, fmt.Errorf("services.redis.command holds %v, not a string", w)
			}
			words = append(words, s)
		}
	}
	command := strings.ReplaceAll(strings.Join(words, "\n"), "$$", "$")
	m := regexp.MustCompile(`(?m)^\s*user ` + regexp.QuoteMeta(user) + ` on >\$\w+ (.+)$`).FindStringSubmatch(command)
	if m == nil {
		return nil, fmt.Errorf("services.redis.command defines no `user %s on >$$x RULES` line", user)
	}
	return strings.Fields(m[1]), nil
}

// ComposeUser creates (or replaces) the ACL user user with password on the
// Redis at addr, logged in as its default user with defaultPassword, with
// the rules docker-compose.yml's redis service gives that user
// (ComposeRules): a client of the test then has exactly the rights the
// deployment gives it.
func ComposeUser(tb testing.TB, addr, defaultPassword, user, password string) {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: defaultPassword, MaxRetries: -1})
	defer rdb.Close()
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + password}
	for _, r := range ComposeRules(tb, user) {
		args = append(args, r)
	}
	if err := rdb.Do(context.Background(), args...).Err(); err != nil {
		tb.Fatalf("ACL SETUSER %s with docker-compose.yml's rules: %v", user, err)
	}
}
