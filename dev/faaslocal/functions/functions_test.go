package functions

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
	return s.Start(name, spec, n)
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
func (noSecrets) Open(string)   {}
func (noSecrets) Forget(string) {}

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

// A redeploy mounts the new secrets into a folder of its own: the running
// replicas' folder keeps exactly what they were started with while the new
// ones start (they read it lazily, on first use), and goes once Replace
// returns (the old replicas have stopped). Until 2026-12-07 a redeploy
// emptied and rewrote the running replicas' folder before Replace.
func TestRedeployLeavesTheRunningReplicasSecretsAlone(t *testing.T) {
	store, err := secrets.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := store.Create(n, []byte("value of "+n)); err != nil {
			t.Fatal(err)
		}
	}
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
