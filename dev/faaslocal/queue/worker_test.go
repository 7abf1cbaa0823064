package queue_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal/queue"
)

// oneFunction is a function store and supervisor with one function, echo,
// whose single replica is addr.
type oneFunction struct{ addr string }

func (oneFunction) Exists(name string) bool                        { return name == "echo" }
func (oneFunction) Invoked(name string) bool                       { return name == "echo" }
func (f oneFunction) Pick(context.Context, string) (string, error) { return f.addr, nil }
func (oneFunction) WaitReady(context.Context, ...string) error     { return nil }

// A call a previous run accepted is replayed with its callback checked
// against today's rules: a refused callback is dropped (never posted) and
// the call still runs and leaves the journal; an allowed one is posted.
func TestReplayRechecksCallbacks(t *testing.T) {
	var invoked, posted atomic.Int32
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		invoked.Add(1)
		_, _ = io.WriteString(w, "done")
	}))
	defer fn.Close()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posted.Add(1) }))
	defer target.Close()

	for _, tc := range []struct {
		name       string
		allowed    func(string) error
		wantPosted int32
	}{
		{"refused", func(string) error { return errors.New("not allowed any more") }, 0},
		{"allowed", func(string) error { return nil }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			invoked.Store(0)
			posted.Store(0)
			dir := t.TempDir()
			j := openJournal(t, dir)
			entries := func() int { // the journal's files (Pending would race with the worker's Done)
				m, _ := filepath.Glob(filepath.Join(dir, "*.json"))
				return len(m)
			}
			c := call("c-" + tc.name)
			c.Callback = target.URL + "/cb"
			if _, err := j.Put(c); err != nil {
				t.Fatal(err)
			}
			w := queue.NewWorker(queue.Config{Journal: j, Functions: oneFunction{strings.TrimPrefix(fn.URL, "http://")},
				Replicas: oneFunction{strings.TrimPrefix(fn.URL, "http://")}, CallbackAllowed: tc.allowed})
			if err := w.Replay(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for entries() > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			w.Stop()
			if n := entries(); n != 0 || invoked.Load() != 1 || posted.Load() != tc.wantPosted {
				t.Errorf("journal %d, function ran %d times, callback posted %d times; want 0, 1, %d",
					n, invoked.Load(), posted.Load(), tc.wantPosted)
			}
		})
	}
}
