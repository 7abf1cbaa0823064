package provider

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// asleep is a function scaled to zero whose store is busy: a redeploy of
// another function holds the store's lock (up to two minutes), so a Scale
// waits for it; Wake asks for the scale and returns, as functions.Store's
// does. No replica becomes available.
type asleep struct {
	oneFunction
	busy chan struct{}
}

func (f asleep) Status(name string) (types.FunctionStatus, error) {
	return types.FunctionStatus{Name: name, Replicas: 0, EnvVars: map[string]string{"exec_timeout": "1s"}}, nil
}

func (f asleep) Scale(string, uint64) error { <-f.busy; return nil }

func (f asleep) Wake(string, uint64) {}

// noReplica never has a replica: Pick waits until its context ends.
type noReplica struct{}

func (noReplica) Pick(ctx context.Context, _ string) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

// A call to a function scaled to zero answers by its own timeout (the
// watchdog's 504 after exec_timeout, 1s here), however long the store is
// busy and however long ResolveWait is: the wake does not wait for the
// store's lock, and the replica is awaited under the call's context. Until
// 2026-12-07 the call waited for the lock (up to a redeploy's two minutes)
// and then ResolveWait under a context of its own.
func TestWakingAFunctionAnswersByTheCallsTimeout(t *testing.T) {
	fn := asleep{busy: make(chan struct{})}
	defer close(fn.busy)
	h := New(Deps{Functions: fn, Replicas: noReplica{}, ResolveWait: time.Minute})
	gw := "http://" + serveLoopback(t, Guard(h.Router()))
	client := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	res, err := client.Post(gw+"/function/fn", "text/plain", nil)
	if err != nil {
		t.Fatalf("call to a function scaled to zero while the store is busy: %v after %v", err, time.Since(start))
	}
	_ = res.Body.Close()
	if took := time.Since(start); res.StatusCode != http.StatusGatewayTimeout || took > 5*time.Second {
		t.Errorf("call to a function scaled to zero while the store is busy: %d after %v, want 504 after its 1s timeout", res.StatusCode, took)
	}
}
