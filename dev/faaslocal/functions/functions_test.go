package functions

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/dev/faaslocal/supervisor"
)

// slowSupervisor counts each function's replicas; a Replace waits until
// release is closed (a redeploy whose new replicas take their time).
type slowSupervisor struct {
	mu       sync.Mutex
	replicas map[string]int
	scales   []int
	release  chan struct{}
}

func (s *slowSupervisor) Start(name string, _ supervisor.Spec, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replicas[name] = n
	return nil
}

func (s *slowSupervisor) Replace(_ context.Context, name string, spec supervisor.Spec, n int) error {
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

func (noSecrets) Check([]string) error         { return nil }
func (noSecrets) MountDir(string) string       { return "/secrets" }
func (noSecrets) Mount(string, []string) error { return nil }
func (noSecrets) Unmount(string) error         { return nil }
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
