package main

import (
	"context"
	"debug/elf"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal"
	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
)

// Addresses are checked before anything is built or written.
func TestRunRefusesNonLoopbackAddressesBeforeBuilding(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	err := run(context.Background(), []string{"-gateway", "0.0.0.0:18080", "-edge", ":18000", "-state", state, "-functions", "get-me"},
		os.LookupEnv, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-gateway") || !strings.Contains(err.Error(), "-edge") {
		t.Fatalf("run: %v, want both addresses refused", err)
	}
	err = run(context.Background(), []string{"-otlp", "127.0.0.1:4318", "-state", state, "-functions", "get-me"}, os.LookupEnv, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-otlp") {
		t.Fatalf("run: %v, want the OTLP URL without a scheme refused", err)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the state directory was created (%v) before the options were checked", err)
	}
}

var readyURLs = regexp.MustCompile(`(?s)ready: .*gateway  (http://\S+).*edge     (http://\S+)/api/v1`)

// run writes the development secrets, builds, serves the gateway API and the
// edge until its context ends, then stops every process it started and
// returns nil.
func TestRunServesUntilCancelledAndLeavesNoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/shop-functions and starts the local runtime; -short was asked for")
	}
	t.Chdir("../..") // run serves the module in its working directory
	state := t.TempDir()
	out := &runtimetest.Output{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-gateway", "127.0.0.1:0", "-edge", "127.0.0.1:0", "-state", state,
			"-functions", "get-me", "-connectors", "", "-seed", "", "-quiet"}, os.LookupEnv, out)
	}()

	var gateway, edge string
	deadline := time.After(4 * time.Minute)
	for gateway == "" {
		select {
		case err := <-done:
			t.Fatalf("run returned before it was ready: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("not ready:\n%s", out)
		case <-time.After(100 * time.Millisecond):
		}
		if m := readyURLs.FindStringSubmatch(out.String()); m != nil {
			gateway, edge = m[1], m[2]
		}
	}
	if b, err := os.ReadFile(filepath.Join(state, "secrets", "jwt-signing-key")); err != nil || !strings.Contains(string(b), "PRIVATE KEY") {
		t.Errorf("jwt-signing-key: %d bytes, %v; want a development key written on the first run", len(b), err)
	}
	// The gateway API's credentials were generated on the first run, as
	// faasd's: admin and a random password, 0600; /system/* needs them.
	user, _ := os.ReadFile(filepath.Join(state, "secrets", "basic-auth-user"))
	password, _ := os.ReadFile(filepath.Join(state, "secrets", "basic-auth-password"))
	if fi, err := os.Stat(filepath.Join(state, "secrets", "basic-auth-password")); err != nil || fi.Mode().Perm() != 0o600 ||
		string(user) != "admin" || len(password) < 24 {
		t.Errorf("basic-auth-user %q, basic-auth-password %d bytes %v %v; want admin and a random 0600 password", user, len(password), fi.Mode(), err)
	}
	if code, _ := get(t, gateway+"/system/function/get-me"); code != http.StatusUnauthorized {
		t.Errorf("gateway without credentials: %d, want 401", code)
	}
	if code, body := getAuth(t, gateway+"/system/function/get-me", string(user), string(password)); code != http.StatusOK || !strings.Contains(body, `"availableReplicas":1`) {
		t.Errorf("gateway describes get-me: %d %s", code, body)
	}
	if code, body := get(t, edge+"/api/v1/users/me"); code != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthenticated"`) {
		t.Errorf("edge without a token: %d %s", code, body)
	}
	binary := filepath.Join(state, "bin", "shop-functions")
	if pids := processesOf(t, binary); len(pids) == 0 {
		t.Fatalf("no process runs %s", binary)
	}
	// Static, as the images build it: no dynamic loader (and libc) mapped into
	// every function process (docs/performance.md, "Memory").
	if f, err := elf.Open(binary); err != nil {
		t.Error(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked (PT_INTERP); want CGO_ENABLED=0", binary)
			}
		}
		f.Close()
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return after cancel")
	}
	if pids := processesOf(t, binary); len(pids) > 0 {
		t.Errorf("processes %v of %s survived", pids, binary)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return getAuth(t, url, "", "")
}

// getAuth is get with basic auth when user is not empty.
func getAuth(t *testing.T, url, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// processesOf lists the processes whose executable is path.
func processesOf(t *testing.T, path string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == path {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// -gateway-only, or FAAS_LOCAL_GATEWAY_ONLY as every flag's variable, sends
// every call between functions through the gateway; direct calls are the default.
func TestGatewayOnlyFromFlagOrEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{"default", nil, nil, false},
		{"flag", []string{"-gateway-only"}, nil, true},
		{"environment", nil, map[string]string{"FAAS_LOCAL_GATEWAY_ONLY": "true"}, true},
		{"flag over environment", []string{"-gateway-only=false"}, map[string]string{"FAAS_LOCAL_GATEWAY_ONLY": "true"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(append(tc.args, "-functions", "get-me"), lookup(tc.env), io.Discard)
			if err != nil || o.GatewayOnly != tc.want {
				t.Errorf("GatewayOnly = %t, %v; want %t", o.GatewayOnly, err, tc.want)
			}
		})
	}
}

// -h succeeds (exit 0, not flag's "help requested" error) and lists every
// flag with the FAAS_LOCAL_* variable it reads: setting that variable
// changes the flag's default, so the name shown is the one read.
func TestHelpNamesTheVariableEachFlagReads(t *testing.T) {
	help := func(env map[string]string) map[string]string { // flag → its block of the usage
		t.Helper()
		var out strings.Builder
		if err := run(context.Background(), []string{"-h"}, lookup(env), &out); err != nil {
			t.Fatalf("run -h: %v, want nil", err)
		}
		blocks, name := map[string]string{}, ""
		for line := range strings.SplitSeq(out.String(), "\n") {
			switch {
			case strings.HasPrefix(line, "  -"):
				name = strings.Fields(line)[0][1:]
				blocks[name] = line
			case name != "" && strings.HasPrefix(line, "    \t"):
				blocks[name] += "\n" + line
			}
		}
		return blocks
	}
	variable := regexp.MustCompile(`\n    \tenv (FAAS_LOCAL_[A-Z_]+)`)
	blocks := help(nil)
	if len(blocks) < 13 {
		t.Fatalf("-h lists %d flags, want every flag (13 or more):\n%v", len(blocks), blocks)
	}
	seen := map[string]string{}
	for name, block := range blocks {
		m := variable.FindStringSubmatch(block)
		if m == nil {
			t.Errorf("-%s names no FAAS_LOCAL_* variable:\n%s", name, block)
			continue
		}
		if other, ok := seen[m[1]]; ok {
			t.Errorf("-%s and -%s both name %s", name, other, m[1])
		}
		seen[m[1]] = name
		value, want := "probe-value", `(default "probe-value")`
		switch first := strings.SplitN(block, "\n", 2)[0]; {
		case strings.Contains(first, " int"):
			value, want = "7", "(default 7)"
		case !strings.Contains(first, " string"):
			value, want = "true", "(default true)"
		}
		got := help(map[string]string{m[1]: value})[name]
		if !strings.Contains(got, want) {
			t.Errorf("-%s with %s=%s set: want %s in\n%s", name, m[1], value, want, got)
		}
	}
}

// lookup is an environment of env's variables only, for parseOptions and
// run: a variable in env is set, even to "".
func lookup(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// FAAS_LOCAL_KONG set but empty turns the edge off as -kong "" does; unset,
// the edge serves gateway/kong.yml. The flag wins either way, and -h shows
// the default the variable made.
func TestAnEmptyKongVariableDisablesTheEdge(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"default", nil, nil, "gateway/kong.yml"},
		{"environment", nil, map[string]string{"FAAS_LOCAL_KONG": "gateway/kong.ce.yml"}, "gateway/kong.ce.yml"},
		{"environment set empty", nil, map[string]string{"FAAS_LOCAL_KONG": ""}, ""},
		{"flag empty", []string{"-kong", ""}, nil, ""},
		{"flag over environment set empty", []string{"-kong", "gateway/kong.yml"}, map[string]string{"FAAS_LOCAL_KONG": ""}, "gateway/kong.yml"},
		{"flag empty over environment", []string{"-kong", ""}, map[string]string{"FAAS_LOCAL_KONG": "gateway/kong.ce.yml"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(append(tc.args, "-functions", "get-me"), lookup(tc.env), io.Discard)
			if err != nil || o.KongFile != tc.want {
				t.Errorf("KongFile = %q, %v; want %q", o.KongFile, err, tc.want)
			}
		})
	}
	// So do the other flags whose empty value turns something off.
	o, err := parseOptions([]string{"-functions", "get-me"}, lookup(map[string]string{"FAAS_LOCAL_SEED": "", "FAAS_LOCAL_CONNECTORS": ""}), io.Discard)
	if err != nil || o.Seed != "" || len(o.Connectors) != 0 {
		t.Errorf("FAAS_LOCAL_SEED and FAAS_LOCAL_CONNECTORS set empty: seed %q, connectors %q, %v; want none", o.Seed, o.Connectors, err)
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"-h"}, lookup(map[string]string{"FAAS_LOCAL_KONG": ""}), &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), `(default "gateway/kong.yml")`) {
		t.Errorf("-h with FAAS_LOCAL_KONG set empty shows the edge's file as -kong's default:\n%s", out.String())
	}
}

// The ready banner names the secrets the stack holds, read from its folder
// (a hand-written list had fallen behind: the event keys, db-password,
// meili-key and smtp-password were missing), the callers' tokens as one.
func TestTheBannerNamesTheSecretsHeld(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"event-signing-key", "admin-email", "internal-token-relay", "internal-token-connector", ".tmp-x"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := secretNames(dir), "admin-email, event-signing-key, internal-token-<caller>"; got != want {
		t.Errorf("secretNames = %q, want %q", got, want)
	}
}

// A second faas-local on a state directory another process holds stops
// before it writes a secret or builds a binary there. Until 2026-12-08
// nothing held the state, and the second one rebuilt the first one's
// binaries before its gateway port or journal got in the way.
func TestRunStopsOnAStateAnotherProcessHolds(t *testing.T) {
	t.Chdir("../..")
	state := t.TempDir()
	lock, err := faaslocal.LockState(state)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err = run(ctx, []string{"-gateway", "127.0.0.1:0", "-edge", "127.0.0.1:0", "-state", state,
		"-functions", "get-me", "-connectors", "", "-seed", "", "-quiet"}, os.LookupEnv, io.Discard)
	if !errors.Is(err, faaslocal.ErrStateInUse) {
		t.Errorf("run on a held state: %v, want %v", err, faaslocal.ErrStateInUse)
	}
	for _, dir := range []string{"secrets", "bin"} {
		if _, err := os.Stat(filepath.Join(state, dir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was written into the held state (%v)", dir, err)
		}
	}
}

// A gateway or edge port already taken (another make run, a compose stack)
// stops the run before anything is built or written, naming each address
// taken and the settings that move it. Until 2026-12-08 the run built every
// function first and then failed with a bare "gateway listen: … address
// already in use".
func TestRunStopsOnATakenPortBeforeBuilding(t *testing.T) {
	t.Chdir("../..")
	taken := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		return ln.Addr().String()
	}
	gateway, edge := taken(), taken()
	for _, tc := range []struct {
		name string
		args []string
		want []string // in the error
		not  []string // not in the error
	}{
		{"gateway and edge", []string{"-gateway", gateway, "-edge", edge},
			[]string{gateway, "FAAS_LOCAL_GATEWAY_ADDR", "-gateway", edge, "FAAS_LOCAL_EDGE_ADDR", "-edge", "another faas-local"}, nil},
		{"edge only", []string{"-gateway", "127.0.0.1:0", "-edge", edge},
			[]string{edge, "FAAS_LOCAL_EDGE_ADDR"}, []string{"FAAS_LOCAL_GATEWAY_ADDR"}},
		{"edge off", []string{"-gateway", gateway, "-edge", edge, "-kong", ""},
			[]string{gateway, "FAAS_LOCAL_GATEWAY_ADDR"}, []string{"FAAS_LOCAL_EDGE_ADDR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			args := append(tc.args, "-state", state, "-functions", "get-me", "-connectors", "", "-seed", "", "-quiet")
			err := run(ctx, args, os.LookupEnv, io.Discard)
			if err == nil {
				t.Fatal("run on a taken port: nil error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q names %q, which is free", err, n)
				}
			}
			for _, dir := range []string{"secrets", "bin"} {
				if _, err := os.Stat(filepath.Join(state, dir)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s was written before the ports were checked (%v)", dir, err)
				}
			}
		})
	}
}
