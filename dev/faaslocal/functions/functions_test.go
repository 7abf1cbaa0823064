package functions

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/dev/faaslocal/secrets"
	"github.com/shopfaas/shop/dev/faaslocal/supervisor"
)

// slowSupervisor counts each function's replicas; a Replace waits until
// release is closed (a redeploy whose new replicas take their time).
type slowSupervisor struct {
	mu       sync.Mutex
	replicas map[string]int
	scales   []int
	release  chan struct{}
	entered  chan struct{} // closed when a Replace starts waiting (when set)
	// replaceErr fails Replace as the supervisor does: ErrClosed before
	// anything changed, any other error after the new replicas took over
	// (stopping the old ones failed).
	replaceErr error
}

func (s *slowSupervisor) Start(name string, _ supervisor.Spec, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replicas[name] = n
	return nil
}

func (s *slowSupervisor) Replace(_ context.Context, name string, spec supervisor.Spec, n int) error {
	if s.entered != nil {
		close(s.entered)
	}
	<-s.release
	if errors.Is(s.replaceErr, supervisor.ErrClosed) {
		return s.replaceErr
	}
	if err := s.Start(name, spec, n); err != nil {
		return err
	}
	return s.replaceErr
}

func (s *slowSupervisor) Scale(name string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replicas[name] = n
	s.scales = append(s.scales, n)
	return nil
}

func (s *slowSupervisor) Remove(name string) error { return nil }

func (s *slowSupervisor) Count(name string) (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replicas[name], s.replicas[name]
}

type noSecrets struct{}

func (noSecrets) Check([]string) error                 { return nil }
func (noSecrets) MountDir(string) string               { return "/secrets" }
func (noSecrets) Mount(string, string, []string) error { return nil }
func (noSecrets) Release(string, string) error         { return nil }
func (noSecrets) Unmount(string) error                 { return nil }
func (noSecrets) Process(types.FunctionDeployment, string) (supervisor.Spec, error) {
	return supervisor.Spec{Path: "/bin/true"}, nil
}
func (noSecrets) Derived() []string { return nil }
func (noSecrets) Open(string)       {}
func (noSecrets) Forget(string)     {}

// Wake returns at once while a redeploy holds the store's lock (a call
// must not wait for it beyond its own timeout), scales the function once
// the lock is free, and does not undo a scale made meanwhile.
func TestWakeDoesNotWaitForARedeploy(t *testing.T) {
	for _, tc := range []struct {
		name        string
		scaledMeanw bool
		want        []int
	}{{"wakes", false, []int{2}}, {"a scale meanwhile wins", true, []int{3}}} {
		t.Run(tc.name, func(t *testing.T) {
			sup := &slowSupervisor{replicas: map[string]int{}, release: make(chan struct{})}
			s := New(Config{Namespace: "openfaas-fn", Supervisor: sup, Secrets: noSecrets{}, Launcher: noSecrets{}, Logs: noSecrets{}})
			zero := map[string]string{scaleMinLabel: "0"}
			for _, fn := range []string{"busy", "idle"} {
				if err := s.Deploy(types.FunctionDeployment{Service: fn, Labels: &zero}); err != nil {
					t.Fatal(err)
				}
			}
			redeployed := make(chan error, 1)
			go func() { redeployed <- s.Update(types.FunctionDeployment{Service: "busy"}) }()
			for s.ops.TryLock() { // until the redeploy holds the lock
				s.ops.Unlock()
				time.Sleep(time.Millisecond)
			}
			woke := make(chan struct{})
			go func() { s.Wake("idle", 2); close(woke) }()
			select {
			case <-woke:
			case <-time.After(2 * time.Second):
				t.Fatal("Wake waited for the redeploy's lock")
			}
			if tc.scaledMeanw {
				sup.mu.Lock()
				sup.replicas["idle"] = 3 // as a Scale queued before the wake's would
				sup.scales = append(sup.scales, 3)
				sup.mu.Unlock()
			}
			close(sup.release)
			if err := <-redeployed; err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				s.mu.Lock()
				done := !s.waking["idle"]
				s.mu.Unlock()
				if done || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			sup.mu.Lock()
			defer sup.mu.Unlock()
			if n := sup.replicas["idle"]; n != tc.want[len(tc.want)-1] || len(sup.scales) != len(tc.want) {
				t.Errorf("idle after the wake: %d replicas, scales %v; want %v", n, sup.scales, tc.want)
			}
		})
	}
}

// dirLauncher records the secrets folder each deployment's replicas get.
type dirLauncher struct{ dirs chan string }

func (l dirLauncher) Process(_ types.FunctionDeployment, dir string) (supervisor.Spec, error) {
	l.dirs <- dir
	return supervisor.Spec{Path: "/bin/true"}, nil
}

func (dirLauncher) Derived() []string { return nil }

// secretsAB is a secrets store holding "a" and "b", each "value of " its name.
func secretsAB(t *testing.T) *secrets.Store {
	t.Helper()
	store, err := secrets.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := store.Create(n, []byte("value of "+n)); err != nil {
			t.Fatal(err)
		}
	}
	return store
}

// A redeploy mounts the new secrets into a folder of its own: the running
// replicas' folder keeps exactly what they were started with while the new
// ones start (they read it lazily, on first use), and goes once Replace
// returns (the old replicas have stopped). Until 2026-12-07 a redeploy
// emptied and rewrote the running replicas' folder before Replace.
func TestRedeployLeavesTheRunningReplicasSecretsAlone(t *testing.T) {
	store := secretsAB(t)
	sup := &slowSupervisor{replicas: map[string]int{}, release: make(chan struct{}), entered: make(chan struct{})}
	launcher := dirLauncher{dirs: make(chan string, 2)}
	s := New(Config{Namespace: "openfaas-fn", Supervisor: sup, Secrets: store, Launcher: launcher, Logs: noSecrets{}})
	if err := s.Deploy(types.FunctionDeployment{Service: "fn", Secrets: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	oldDir := <-launcher.dirs
	read := func(dir, name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return string(b)
	}
	if read(oldDir, "a") != "value of a" {
		t.Fatalf("first deploy: %s holds no secret a", oldDir)
	}
	redeployed := make(chan error, 1)
	go func() { redeployed <- s.Update(types.FunctionDeployment{Service: "fn", Secrets: []string{"b"}}) }()
	newDir := <-launcher.dirs
	<-sup.entered // the new secrets are mounted, the new replicas starting
	if got := read(oldDir, "a"); got != "value of a" || read(oldDir, "b") != "" {
		t.Errorf("while the new replicas start, the running ones' folder %s holds a=%q b=%q; want a only, untouched",
			oldDir, got, read(oldDir, "b"))
	}
	close(sup.release)
	if err := <-redeployed; err != nil {
		t.Fatal(err)
	}
	if read(newDir, "b") != "value of b" || read(newDir, "a") != "" {
		t.Errorf("the new replicas' folder %s holds a=%q b=%q; want b only", newDir, read(newDir, "a"), read(newDir, "b"))
	}
	if _, err := os.Stat(oldDir); newDir != oldDir && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old replicas' folder %s is still there after the redeploy: %v", oldDir, err)
	}
}

// A redeploy whose Replace fails records what runs and releases the other
// generation's folder: the new deployment and its folder once the new
// replicas took over (the old ones failed to stop), the old ones when
// nothing changed (the supervisor is closed). Until 2026-12-07 a failed
// Replace kept the old deployment in the store whatever ran, and released
// neither folder: the new one stayed on disk until the function was
// removed, and the next redeploy released the old one again.
func TestFailedRedeployRecordsWhatRuns(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		switched bool
	}{
		{"the old replicas fail to stop", errors.New("stop fn-1: operation not permitted"), true},
		{"the supervisor is closed", supervisor.ErrClosed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := secretsAB(t)
			release := make(chan struct{})
			close(release)
			sup := &slowSupervisor{replicas: map[string]int{}, release: release, replaceErr: tc.err}
			launcher := dirLauncher{dirs: make(chan string, 2)}
			s := New(Config{Namespace: "openfaas-fn", Supervisor: sup, Secrets: store, Launcher: launcher, Logs: noSecrets{}})
			if err := s.Deploy(types.FunctionDeployment{Service: "fn", Secrets: []string{"a"}}); err != nil {
				t.Fatal(err)
			}
			oldDir := <-launcher.dirs
			err := s.Update(types.FunctionDeployment{Service: "fn", Secrets: []string{"b"}})
			if !errors.Is(err, tc.err) {
				t.Fatalf("Update: %v; want %v", err, tc.err)
			}
			newDir := <-launcher.dirs
			running, unused, wantSecret := oldDir, newDir, "a"
			if tc.switched {
				running, unused, wantSecret = newDir, oldDir, "b"
			}
			st, err := s.Status("fn")
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Secrets) != 1 || st.Secrets[0] != wantSecret {
				t.Errorf("the store records secrets %v; want [%s] (what runs)", st.Secrets, wantSecret)
			}
			if b, err := os.ReadFile(filepath.Join(running, wantSecret)); string(b) != "value of "+wantSecret {
				t.Errorf("the running replicas' folder %s: %s=%q, %v", running, wantSecret, b, err)
			}
			if _, err := os.Stat(unused); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the folder %s no replica uses is still there: %v", unused, err)
			}
			if s.get("fn").secretsDir != running {
				t.Errorf("the store records folder %s; want %s", s.get("fn").secretsDir, running)
			}
		})
	}
}

// envLauncher runs every deployment with env and derives the names in
// derived (Launcher.Derived).
type envLauncher struct {
	env     []string
	derived []string
}

func (l envLauncher) Process(types.FunctionDeployment, string) (supervisor.Spec, error) {
	return supervisor.Spec{Path: "/bin/true", Env: l.env}, nil
}

func (l envLauncher) Derived() []string { return l.derived }

// describe deploys a function that sends sent, run by l, and returns the
// envVars its status lists.
func describe(t *testing.T, l envLauncher, sent map[string]string) map[string]string {
	t.Helper()
	sup := &slowSupervisor{replicas: map[string]int{}, release: make(chan struct{})}
	s := New(Config{Namespace: "openfaas-fn", Supervisor: sup, Secrets: noSecrets{}, Launcher: l, Logs: noSecrets{}})
	if err := s.Deploy(types.FunctionDeployment{Service: "fn", EnvVars: sent}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Status("fn")
	if err != nil {
		t.Fatal(err)
	}
	return st.EnvVars
}

// The names listed with the process's value are the ones the launcher says
// it derives, one list (launcher.Derived in dev/faaslocal/process.go), not a
// copy kept here that a new derived name would miss. Until 2026-12-08 the
// store kept its own list, and a name it lacked was listed as sent.
func TestTheListedDerivedNamesAreTheLaunchers(t *testing.T) {
	l := envLauncher{env: []string{"X_DERIVED=the process's", "GREETING=host value"}, derived: []string{"X_DERIVED"}}
	got := describe(t, l, map[string]string{"X_DERIVED": "sent", "GREETING": "hello", "GATEWAY_URL": "sent"})
	want := map[string]string{"X_DERIVED": "the process's", "GREETING": "hello", "GATEWAY_URL": "sent"}
	if !maps.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
}

// A derived URL is listed without its userinfo: Config.Env may point
// GATEWAY_URL (or a FUNCTION_URLS entry) at a URL with a user and password,
// which faas-cli describe would otherwise print. Until 2026-12-08 it was
// listed whole.
func TestTheListedURLsCarryNoCredentials(t *testing.T) {
	l := envLauncher{derived: []string{"GATEWAY_URL", "FUNCTION_URLS"}, env: []string{
		"GATEWAY_URL=http://gw-user:gw-pass@127.0.0.1:8080/base?x=1",
		"FUNCTION_URLS=a=http://127.0.0.1:1,b=http://token@127.0.0.1:2",
	}}
	got := describe(t, l, map[string]string{"GATEWAY_URL": "sent", "FUNCTION_URLS": "sent"})
	want := map[string]string{
		"GATEWAY_URL":   "http://xxxxx@127.0.0.1:8080/base?x=1",
		"FUNCTION_URLS": "a=http://127.0.0.1:1,b=http://xxxxx@127.0.0.1:2",
	}
	if !maps.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	for k, v := range got {
		for _, secret := range []string{"gw-user", "gw-pass", "token", "u:p"} {
			if strings.Contains(v, secret) {
				t.Errorf("listed %s = %q shows %q", k, v, secret)
			}
		}
	}
	// A password that splits the list, ends the host early, comes without
	// a scheme or does not parse: the whole value is hidden, no part of it
	// shown.
	for _, v := range []string{
		"a=http://127.0.0.1:1,c=http://u:p%zz@127.0.0.1:3",
		"gw:secret@127.0.0.1:8080",
		"http://u:12/ab@h:1",
		"http://u:p,w@h:1",
		"a=http://127.0.0.1:1,b=http://u:12,w@h:1",
	} {
		if got := redactURLs(v); got != redacted {
			t.Errorf("redactURLs(%q) = %q, want it hidden whole", v, got)
		}
	}
}

// WaitDeployed returns once the function is deployed, woken by the deploy
// itself, and with its context's error when that ends first.
func TestWaitDeployedReturnsWhenTheFunctionIsDeployed(t *testing.T) {
	sup := &slowSupervisor{replicas: map[string]int{}, release: make(chan struct{})}
	s := New(Config{Namespace: "openfaas-fn", Supervisor: sup, Secrets: noSecrets{}, Launcher: noSecrets{}, Logs: noSecrets{}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitDeployed(ctx, "late"); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitDeployed with its context done: %v, want context.Canceled", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.WaitDeployed(context.Background(), "late") }()
	if err := s.Deploy(types.FunctionDeployment{Service: "other"}); err != nil {
		t.Fatal(err)
	}
	// Another function's deploy wakes the wait, which looks again and waits
	// on: it must not return for it.
	select {
	case err := <-waited:
		t.Fatalf("WaitDeployed(late) returned %v after other's deploy, want it waiting", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := s.Deploy(types.FunctionDeployment{Service: "late"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("WaitDeployed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitDeployed did not return once the function was deployed")
	}
	if err := s.WaitDeployed(ctx, "late"); err != nil {
		t.Errorf("WaitDeployed of a deployed function: %v, want nil at once", err)
	}
}
