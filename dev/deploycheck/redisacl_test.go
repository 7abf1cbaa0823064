package deploycheck

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// redisUsers are the redis service's ACL users, each with the secret that
// holds its password and a password of the tests (letters and digits).
var redisUsers = []struct{ user, secret, password string }{
	{"default", "redis-password", "0123abcdXYZ"},
	{"kong", "redis-kong-password", "kong0123abcd"},
	{"exporter", "redis-exporter-password", "exporter0123abcd"},
	{"admin", "redis-admin-password", "admin0123abcd"},
}

// composeRedis runs docker-compose.yml's redis command with sh, as the
// container runs it: its secrets read from a directory of the test's
// instead of /run/secrets, and docker-entrypoint.sh replaced by a shim that
// records its argv and starts the real redis-server on a free loopback port
// with a data directory of the test's.
type composeRedis struct {
	script string // the command's script, $$ already $
	dir    string // the shim's directory (and redis' data)
	addr   string // where redis-server listens once started
}

func newComposeRedis(t *testing.T) *composeRedis {
	t.Helper()
	redisServer := proctest.Binary(t, "Debian: apt-get install redis-server", "redis-server")
	script := realCompose(t).Services["redis"].Command
	if len(script) != 3 || script[0] != "/bin/sh" || script[1] != "-c" {
		t.Fatalf("redis command %q, want /bin/sh -c SCRIPT", script)
	}
	dir := t.TempDir()
	addr := freeLoopbackAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	// The shim records the argv it was given (what the image's entrypoint
	// would pass to redis-server, which then rewrites its process title).
	shim := "#!/bin/sh\nprintf '%s\\n' \"$*\" > " + filepath.Join(dir, "argv") + "\n[ \"$1\" = redis-server ] && shift\nexec " +
		redisServer + ` "$@" --bind 127.0.0.1 --port ` + port + " --dir " + dir + " --save ''\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-entrypoint.sh"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	return &composeRedis{script: strings.ReplaceAll(script[2], "$$", "$"), dir: dir, addr: addr}
}

// command is the service's command reading its secrets from secrets.
func (r *composeRedis) command(secrets string) (*exec.Cmd, *strings.Builder) {
	cmd := exec.Command("/bin/sh", "-c", strings.ReplaceAll(r.script, "/run/secrets/", secrets+"/"))
	cmd.Env = []string{"PATH=" + r.dir + ":" + os.Getenv("PATH")}
	cmd.Dir = r.dir
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// secretFiles writes a directory of secret files: name to content; a
// content of nil makes name a directory (unreadable as a file).
func secretFiles(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		var err error
		if content == nil {
			err = os.Mkdir(filepath.Join(dir, name), 0o700)
		} else {
			err = os.WriteFile(filepath.Join(dir, name), content, 0o400)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// goodSecrets are the four secret files with the tests' passwords.
func goodSecrets() map[string][]byte {
	m := map[string][]byte{}
	for _, u := range redisUsers {
		m[u.secret] = []byte(u.password + "\n")
	}
	return m
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// badRedisPasswords are passwords redis-server would reject (a space, a
// quote: the line is printed), or read otherwise than its clients (a
// backslash escape, a second line), or that break the exporter's JSON.
var badRedisPasswords = []string{"two words", `quo"te`, "it's", `back\x41slash`, "line\nbreak", "tab\tbed", "dollar$x", "caf\u00e9"}

// Each of the redis service's four secrets is checked before redis-server
// starts: one that is missing, empty or unreadable, or that holds anything
// but letters and digits, stops the service with a message that names it
// and does not show the rejected password (redis-server itself prints a
// configuration line it cannot parse, password and all, to the container's
// log). A host upgraded from the last release, which has redis-password
// alone, is told each of the three new secrets it lacks.
func TestRedisRefusesAMissingOrBadSecret(t *testing.T) {
	r := newComposeRedis(t)
	type refusal struct {
		name     string
		files    map[string][]byte
		password string   // a rejected password the output must not show
		named    []string // the secrets the output must name
	}
	var cases []refusal
	for _, u := range redisUsers {
		for what, content := range map[string][]byte{"missing": {}, "empty": []byte("\n"), "unreadable": nil} {
			files := goodSecrets()
			if what == "missing" {
				delete(files, u.secret)
			} else {
				files[u.secret] = content
			}
			cases = append(cases, refusal{u.secret + " " + what, files, "", []string{u.secret}})
		}
		for i, pw := range badRedisPasswords {
			files := goodSecrets()
			files[u.secret] = []byte(pw + "\n")
			cases = append(cases, refusal{fmt.Sprintf("%s bad %d", u.secret, i), files, pw, []string{u.secret}})
		}
	}
	lastRelease := map[string][]byte{"redis-password": []byte("0123abcdXYZ\n")}
	cases = append(cases, refusal{"the last release's secrets", lastRelease, "",
		[]string{"redis-kong-password", "redis-exporter-password", "redis-admin-password"}})
	for _, tc := range cases {
		cmd, out := r.command(secretFiles(t, tc.files))
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: the command exited 0, want a failure", tc.name)
			}
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s: redis started (output %q), want the command to fail", tc.name, out.String())
		}
		for _, s := range tc.named {
			if !strings.Contains(out.String(), s) {
				t.Errorf("%s: output %q does not name the secret %s", tc.name, out.String(), s)
			}
		}
		if tc.password != "" && shows(out.String(), tc.password) {
			t.Errorf("%s: output %q shows the password", tc.name, out.String())
		}
		for _, u := range redisUsers {
			if strings.Contains(out.String(), u.password) {
				t.Errorf("%s: output %q shows the password of %s", tc.name, out.String(), u.secret)
			}
		}
	}
}

// startComposeRedis starts the redis service's command with the four good
// secrets and returns a function that sends one command as user with
// password ("" user: no user name; "" password: no AUTH).
func startComposeRedis(t *testing.T) (r *composeRedis, ask func(user, password string, args ...any) (any, error)) {
	t.Helper()
	r = newComposeRedis(t)
	cmd, _ := r.command(secretFiles(t, goodSecrets()))
	proctest.Start(t, cmd) // its output, not command's, is logged if the test fails
	ask = func(user, password string, args ...any) (any, error) {
		rdb := redis.NewClient(&redis.Options{Addr: r.addr, Username: user, Password: password, MaxRetries: -1,
			Protocol: 2, DisableIdentity: true})
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return rdb.Do(ctx, args...).Result()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := ask("admin", "admin0123abcd", "PING"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("redis did not answer the admin user within 10 s: %v", err)
		}
	}
	return r, ask
}

// refused reports whether err is Redis refusing a command or key (NOPERM),
// as against a failed login or a connection error.
func refused(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOPERM")
}

// The redis service starts the real redis-server with four ACL users, each
// logging in with the password of its own secret, and docker-compose.yml's
// options: a client without a password is refused (NOAUTH), a user with
// another user's password too (WRONGPASS), and no password is on the
// command line. The functions' default user can read no token key
// (ratelimit:*, Kong's per-token counters), list no key and run no CONFIG,
// MONITOR or ACL; kong runs what Kong 3.9's redis policy sends (AUTH, then
// EVAL of scripts that call INCR and EXPIRE, and, with a sync_rate, EXISTS,
// INCRBY and EXPIREAT: kong/plugins/rate-limiting/policies/init.lua) on
// ratelimit:* keys only; exporter runs INFO and reads no key; admin runs
// everything.
func TestRedisUsersAreWhatTheyNeed(t *testing.T) {
	r, ask := startComposeRedis(t)
	pw := map[string]string{}
	for _, u := range redisUsers {
		pw[u.user] = u.password
	}
	// A token key as Kong names it: ratelimit:<route>:<service>:<the
	// Authorization header>:<window start>:minute.
	token := "ratelimit:00000000-0000-0000-0000-000000000001:00000000-0000-0000-0000-000000000002:Bearer eyJ.secret.token:1765000000000:minute"
	if _, err := ask("admin", pw["admin"], "SET", token, "7"); err != nil {
		t.Fatal(err)
	}
	if _, err := ask("admin", pw["admin"], "SET", "cart:someone", "x"); err != nil {
		t.Fatal(err)
	}

	t.Run("login", func(t *testing.T) {
		for _, u := range redisUsers {
			if _, err := ask(u.user, u.password, "AUTH", u.user, u.password); err != nil {
				t.Errorf("%s with %s: %v", u.user, u.secret, err)
			}
			for _, other := range redisUsers {
				if other.user == u.user {
					continue
				}
				if _, err := ask(u.user, other.password, "AUTH", u.user, other.password); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
					t.Errorf("%s with %s's password: %v, want WRONGPASS", u.user, other.secret, err)
				}
			}
		}
		if _, err := ask("", "", "PING"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Errorf("PING without a password: %v, want NOAUTH", err)
		}
		// The functions log in with a password alone (redisconn): the
		// default user.
		if got, err := ask("", pw["default"], "PING"); err != nil || got != "PONG" {
			t.Errorf("PING with redis-password and no user name: %v, %v; want PONG", got, err)
		}
	})

	t.Run("default", func(t *testing.T) {
		for _, args := range [][]any{{"GET", token}, {"SCAN", "0", "MATCH", "ratelimit:*"}, {"KEYS", "ratelimit:*"}, {"KEYS", "*"},
			{"CONFIG", "GET", "*"}, {"CONFIG", "SET", "maxmemory", "1"}, {"MONITOR"}, {"ACL", "LIST"}, {"ACL", "SETUSER", "default", "+@all"},
			{"INFO"}, {"FLUSHALL"}, {"EVAL", "return redis.call('get', KEYS[1])", "1", token}} {
			if got, err := ask("default", pw["default"], args...); !refused(err) {
				t.Errorf("default %q: %v, %v; want NOPERM", args, got, err)
			}
		}
	})

	t.Run("kong", func(t *testing.T) {
		// Scripts calling what Kong's own scripts call, with the key in
		// KEYS as Kong passes it (written for this test, not Kong's text).
		count := "local n = redis.call('incr', KEYS[1]) if n == 1 then redis.call('expire', KEYS[1], ARGV[1]) end return n - 1"
		sync := "local had = redis.call('exists', KEYS[1]) redis.call('incrby', KEYS[1], ARGV[1]) if had == 0 then redis.call('expireat', KEYS[1], ARGV[2]) end return had"
		key := strings.Replace(token, "eyJ.secret.token", "another", 1)
		for i, want := range []int64{0, 1} {
			if got, err := ask("kong", pw["kong"], "EVAL", count, "1", key, "60"); err != nil || got != want {
				t.Errorf("kong's count %d: %v, %v; want %d", i+1, got, err, want)
			}
		}
		if got, err := ask("kong", pw["kong"], "EVAL", sync, "1", key, "3", fmt.Sprint(time.Now().Add(time.Minute).Unix())); err != nil || got != int64(1) {
			t.Errorf("kong's sync: %v, %v; want 1", got, err)
		}
		if got, err := ask("admin", pw["admin"], "GET", key); err != nil || got != "5" {
			t.Errorf("the counter after kong's calls: %v, %v; want 5", got, err)
		}
		for _, k := range []string{"cart:someone", "shop:ratelimit:create-order:x", "shop:catalog:product:x"} {
			if got, err := ask("kong", pw["kong"], "EVAL", count, "1", k, "60"); err == nil {
				t.Errorf("kong's count on %s: %v, want refused", k, got)
			}
		}
		for _, args := range [][]any{{"GET", "cart:someone"}, {"HGETALL", "cart:someone"}, {"GET", token}, {"SCAN", "0"}, {"KEYS", "*"},
			{"CONFIG", "GET", "*"}, {"MONITOR"}, {"ACL", "LIST"}, {"FLUSHALL"}, {"DEL", token}} {
			if got, err := ask("kong", pw["kong"], args...); !refused(err) {
				t.Errorf("kong %q: %v, %v; want NOPERM", args, got, err)
			}
		}
	})

	t.Run("exporter", func(t *testing.T) {
		if got, err := ask("exporter", pw["exporter"], "INFO", "ALL"); err != nil || !strings.Contains(fmt.Sprint(got), "maxmemory:268435456") {
			t.Errorf("exporter INFO ALL: %v; want maxmemory 256mb in it", err)
		}
		for _, args := range [][]any{{"GET", token}, {"GET", "cart:someone"}, {"SCAN", "0"}, {"KEYS", "*"}, {"CONFIG", "GET", "*"},
			{"CONFIG", "GET", "requirepass"}, {"MONITOR"}, {"ACL", "LIST"}, {"SLOWLOG", "GET"}, {"CLIENT", "LIST"}, {"DUMP", token},
			{"EVAL", "return 1", "0"}} {
			if got, err := ask("exporter", pw["exporter"], args...); !refused(err) {
				t.Errorf("exporter %q: %v, %v; want NOPERM", args, got, err)
			}
		}
	})

	t.Run("admin", func(t *testing.T) {
		for option, want := range map[string]string{"maxmemory-policy": "volatile-ttl", "maxmemory": "268435456", "appendonly": "yes"} {
			got, err := ask("admin", pw["admin"], "CONFIG", "GET", option)
			if err != nil || fmt.Sprint(got) != fmt.Sprintf("[%s %s]", option, want) {
				t.Errorf("CONFIG GET %s = %v, %v; want %s (docker-compose.yml's option)", option, got, err, want)
			}
		}
		if got, err := ask("admin", pw["admin"], "GET", token); err != nil || got != "7" {
			t.Errorf("admin GET a token key: %v, %v", got, err)
		}
		for _, args := range [][]any{{"KEYS", "*"}, {"ACL", "LIST"}, {"SCAN", "0"}, {"PUBLISH", "any", "x"}} {
			if _, err := ask("admin", pw["admin"], args...); err != nil {
				t.Errorf("admin %q: %v", args, err)
			}
		}
	})

	argv, err := os.ReadFile(filepath.Join(r.dir, "argv"))
	if err != nil || !strings.HasPrefix(string(argv), "redis-server - ") {
		t.Errorf("docker-entrypoint.sh's arguments %q (%v): want redis-server - …", argv, err)
	}
	for _, u := range redisUsers {
		if strings.Contains(string(argv), u.password) {
			t.Errorf("docker-entrypoint.sh's arguments %q hold the password of %s", argv, u.secret)
		}
	}
}

// The default user's rules in docker-compose.yml are exactly the ones
// docs/security.md gives and internal/redisconn
// TestTheDocumentedACLRunsEveryCall runs every call of the functions with:
// one rule string, tested once.
func TestTheComposeACLIsTheDocumentedOne(t *testing.T) {
	doc := regexp.MustCompile("`(resetkeys [^`]+)`").FindSubmatch(read(t, "docs/security.md"))
	if doc == nil {
		t.Fatal("docs/security.md gives no ACL rules for the functions' user (`resetkeys …`)")
	}
	// The rules the edge's and the integration tests give their kong user
	// are read by the same helper.
	if diff := cmp.Diff(strings.Fields(string(doc[1])), redisconntest.ComposeRules(t, "default")); diff != "" {
		t.Errorf("the default user's rules, docs/security.md (-) and docker-compose.yml (+):\n%s", diff)
	}
}

// Each Redis password secret is mounted only where it is used: the
// functions' redis-password in redis alone (the functions get theirs from
// faas-cli), Kong's in redis and kong, the exporter's in redis (the exporter
// reads the JSON map rendered from it), the admin's in redis alone; Kong
// never holds the functions' password, and no function declares another
// user's password in stack.yml or stack.ce.yml.
func TestEachRedisSecretIsMountedWhereItIsUsed(t *testing.T) {
	c := realCompose(t)
	want := map[string][]string{
		"redis-password":                {"redis"},
		"redis-kong-password":           {"kong", "redis"},
		"redis-exporter-password":       {"redis"},
		"redis-admin-password":          {"redis"},
		"redis-exporter-passwords.json": {"redis-exporter"},
	}
	got := map[string][]string{}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			if secret, ok := strings.CutPrefix(v.Source, "/var/lib/faasd/secrets/"); ok && want[secret] != nil {
				got[secret] = append(got[secret], name)
			}
		}
	}
	for _, names := range got {
		slices.Sort(names)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("services mounting each Redis secret (-want +got):\n%s", diff)
	}
	if cmd := strings.Join(c.Services["kong"].Command, " "); strings.Contains(cmd, "redis-password") {
		t.Errorf("kong's command reads redis-password (the functions' password): %s", cmd)
	}
	for _, file := range []string{"stack.yml", "stack.ce.yml"} {
		s, err := stackfile.LoadEnv(filepath.Join(root(t), file), func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		for name, fn := range s.Functions {
			for _, secret := range fn.Secrets {
				if secret != "redis-password" && want[secret] != nil {
					t.Errorf("%s: function %s declares %s, which is not the functions' Redis password", file, name, secret)
				}
			}
		}
	}
}

// Kong's compose command exports SHOP_REDIS_KONG_PASSWORD from the secret
// redis-kong-password, the password of Redis's user kong: it starts with a
// good file and refuses the files the redis service refuses for that
// secret, with a line naming it and without showing the password, so Redis
// and the rate limits never disagree on what the password is. A
// jwt-verify-key that is missing, unreadable or empty stops it the same
// way. /docker-entrypoint.sh is replaced by a shim that records both
// variables (composeStart): a good pair starts Kong with each value in its
// own variable, the key's trailing newline stripped.
func TestKongTakesItsRedisPasswordFromItsSecret(t *testing.T) {
	const key = "verifykey0123\n" // stands for the PEM public key
	run := func(files map[string][]byte) (bool, map[string]string, string) {
		return composeStart(t, "kong", "/docker-entrypoint.sh", []string{"SHOP_REDIS_KONG_PASSWORD", "SHOP_JWT_VERIFY_KEY"}, files)
	}
	good := map[string][]byte{"jwt-verify-key": []byte(key), "redis-kong-password": []byte("kong0123abcd\n")}
	want := map[string]string{"SHOP_REDIS_KONG_PASSWORD": "kong0123abcd", "SHOP_JWT_VERIFY_KEY": "verifykey0123"}
	if started, got, out := run(good); !started || !maps.Equal(got, want) {
		t.Errorf("kong with a good redis-kong-password and jwt-verify-key: started %t with %q (%s), want it started with %q", started, got, out, want)
	}
	for _, what := range unusable {
		started, _, out := run(withUnusable(good, "redis-kong-password", what))
		wantNamedRefusal(t, "redis-kong-password "+what, "kong", "redis-kong-password", out, started, key)
		started, _, out = run(withUnusable(good, "jwt-verify-key", what))
		wantNamedRefusal(t, "jwt-verify-key "+what, "kong", "jwt-verify-key", out, started, "kong0123abcd")
	}
	for i, pw := range badRedisPasswords {
		files := map[string][]byte{"jwt-verify-key": []byte(key), "redis-kong-password": []byte(pw + "\n")}
		started, _, out := run(files)
		wantNamedRefusal(t, fmt.Sprintf("redis-kong-password bad %d", i), "kong", "redis-kong-password", out, started, key, pw)
	}
	// The functions' password alone (a host that kept the last release's
	// files and skipped the new secret) does not start Kong.
	lastRelease := map[string][]byte{"jwt-verify-key": []byte(key), "redis-password": []byte("0123abcdXYZ\n")}
	started, _, out := run(lastRelease)
	wantNamedRefusal(t, "redis-password only", "kong", "redis-kong-password", out, started, "0123abcdXYZ")
}

// The redis-exporter, run as docker-compose.yml runs it (the user exporter,
// its password from the JSON map rendered from redis-exporter-password, no
// CONFIG), serves every Redis metric the alerts and dashboards read:
// Debian's prometheus-redis-exporter against the compose command's
// redis-server; Redis denied it nothing but SLOWLOG GET (its ACL LOG holds
// no other entry for the user exporter).
func TestTheRedisExporterServesWhatTheAlertsReadAsItsUser(t *testing.T) {
	exporter := proctest.Binary(t, "Debian: apt-get install prometheus-redis-exporter", "prometheus-redis-exporter", "redis_exporter")
	r, ask := startComposeRedis(t)
	var args []string
	for _, a := range realCompose(t).Services["redis-exporter"].Command[1:] {
		switch {
		case strings.HasPrefix(a, "--redis.addr="):
			a = "--redis.addr=redis://" + r.addr
		case strings.HasPrefix(a, "--redis.password-file="):
			file := filepath.Join(t.TempDir(), "redis-exporter-passwords.json")
			if err := os.WriteFile(file, []byte(`{"redis://`+r.addr+`":"exporter0123abcd"}`+"\n"), 0o400); err != nil {
				t.Fatal(err)
			}
			a = "--redis.password-file=" + file
		case strings.HasPrefix(a, "--web.listen-address="):
			continue
		}
		args = append(args, a)
	}
	listen := freeLoopbackAddr(t)
	proctest.Start(t, exec.Command(exporter, append(args, "--web.listen-address="+listen)...))

	var wanted []string
	for _, m := range regexp.MustCompile(`redis_[a-z_]+`).FindAllString(string(readTree(t, "monitoring")), -1) {
		if !strings.HasPrefix(m, "redis_exporter") && !slices.Contains(wanted, m) {
			wanted = append(wanted, m)
		}
	}
	slices.Sort(wanted)
	if len(wanted) == 0 {
		t.Fatal("no redis_ metric in monitoring/")
	}
	var body string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		res, err := http.Get("http://" + listen + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			body = string(b)
			if strings.Contains(body, "\nredis_up 1\n") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exporter did not serve redis_up 1 within 15 s: %v\n%s", err, body)
		}
	}
	for _, m := range wanted {
		if !regexp.MustCompile(`(?m)^` + m + `[ {]`).MatchString(body) {
			t.Errorf("the exporter serves no %s (read by monitoring/)", m)
		}
	}
	log, err := ask("admin", "admin0123abcd", "ACL", "LOG")
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := log.([]any)
	for _, e := range entries {
		fields, _ := e.([]any)
		m := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			m[fmt.Sprint(fields[i])] = fmt.Sprint(fields[i+1])
		}
		// SLOWLOG GET shows slow commands' arguments: refused on purpose.
		if m["username"] == "exporter" && m["object"] != "slowlog|get" {
			t.Errorf("Redis denied the exporter %s (%s): ACL LOG entry %v", m["object"], m["reason"], m)
		}
	}
}

// readTree is the text of every file under rel, joined.
func readTree(t *testing.T, rel string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(filepath.Join(root(t), rel), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(all, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// The commands of docs/deploy-kubernetes.md's "Upgrading to Redis's ACL
// users", run as written: step 2 makes the user kong on a Redis (here a
// redis-server with an admin user, as a managed Redis's administrator)
// with docker-compose.yml's rules and the password of
// secrets/redis-kong-password, so kong then counts as Kong does (EVAL of
// INCR and EXPIRE on a ratelimit: key) and may not read a cart; step 3's
// Secret, rendered by kubectl --dry-run=client (no API server; skipped
// without kubectl), holds redis-kong-password and jwt-verify-key, and not
// the functions' redis-password.
func TestTheKubernetesGuideCreatesKong(t *testing.T) {
	doc := string(read(t, "docs/deploy-kubernetes.md"))
	_, section, ok := strings.Cut(doc, "### Upgrading to Redis's ACL users\n")
	if !ok {
		t.Fatal("docs/deploy-kubernetes.md has no section \"Upgrading to Redis's ACL users\"")
	}
	_, block, _ := strings.Cut(section, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	step := func(from, to string) string {
		t.Helper()
		_, s, ok := strings.Cut(block, from)
		if !ok {
			t.Fatalf("the section's commands have no %q", from)
		}
		s, _, ok = strings.Cut(s, to)
		if !ok {
			t.Fatalf("the section's commands have no %q", to)
		}
		return s
	}
	const password, adminPassword, kongPassword = "guideDefaultPassword", "guideAdminPassword", "guideKongPassword"
	addr := redisconntest.Server(t, password)
	redisconntest.ComposeUser(t, addr, password, "admin", adminPassword)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"docker-compose.yml": read(t, "docker-compose.yml"),
		"secrets/redis-kong-password": []byte(kongPassword + "\n"), "secrets/redis-admin-password": []byte(adminPassword + "\n"),
		"secrets/jwt-verify-key": []byte("public key\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(addr)
	sh := func(script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-ec", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "REDIS_HOST="+host, "REDIS_PORT="+port, "ADMIN_USER=admin")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	if out := sh("#" + step("# 2.", "# 3.")); strings.TrimSpace(out) != "OK" {
		t.Errorf("step 2 answered %q, want OK", out)
	}
	kong := redis.NewClient(&redis.Options{Addr: addr, Username: "kong", Password: kongPassword, MaxRetries: -1})
	defer kong.Close()
	ctx := context.Background()
	key := "ratelimit:guide-test"
	if n, err := kong.Eval(ctx, `local n = redis.call("INCR", KEYS[1]) redis.call("EXPIRE", KEYS[1], 60) return n`, []string{key}).Int64(); err != nil || n != 1 {
		t.Errorf("kong's count: %d, %v; want 1", n, err)
	}
	if err := kong.Get(ctx, "cart:someone").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("kong reading a cart: %v, want NOPERM", err)
	}

	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("no kubectl: step 3 not run")
	}
	s3 := "#" + step("# 3.", "# 4.")
	s3, ok = strings.CutSuffix(strings.TrimSpace(s3), " | kubectl apply -f -")
	if !ok {
		t.Fatalf("step 3 does not end with `| kubectl apply -f -`: %q", s3)
	}
	var secret struct {
		Metadata struct{ Name, Namespace string }
		Data     map[string]string
	}
	if err := yaml.Unmarshal([]byte(sh(s3)), &secret); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range secret.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if secret.Metadata.Name != "kong-credentials" || secret.Metadata.Namespace != "openfaas" ||
		!slices.Equal(keys, []string{"jwt-verify-key", "redis-kong-password"}) {
		t.Errorf("step 3's Secret: %s/%s with keys %v, want openfaas/kong-credentials with jwt-verify-key and redis-kong-password",
			secret.Metadata.Namespace, secret.Metadata.Name, keys)
	}
}

// Kong runs without its anonymous usage report (KONG_ANONYMOUS_REPORTS
// off): no report leaves for Kong Inc., and no INFO server reaches Redis,
// which the user kong may not run (each refusal a line in ACL LOG).
// dev/kubecheck holds the Kubernetes Deployment's environment to the
// compose service's.
func TestKongSendsNoAnonymousReports(t *testing.T) {
	if v, ok := realCompose(t).Services["kong"].Environment["KONG_ANONYMOUS_REPORTS"]; !ok || v != "off" {
		t.Errorf("kong's KONG_ANONYMOUS_REPORTS = %q (set: %v), want \"off\"", v, ok)
	}
}
