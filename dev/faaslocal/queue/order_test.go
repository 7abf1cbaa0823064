package queue_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shopfaas/shop/dev/faaslocal/queue"
)

// orderedFunction records the X-Call-Id of each call it gets, in the order
// they arrive; the first call waits for release.
func orderedFunction(t *testing.T, release <-chan struct{}) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Call-Id"))
		first := len(seen) == 1
		mu.Unlock()
		if first {
			<-release
		}
	}))
	t.Cleanup(fn.Close)
	return fn, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seen) }
}

// Calls waiting for their turn start in the order they were queued, as
// faasd's queue-worker (max_inflight=1) takes them from its queue. Until
// 2026-12-07 each waited in a goroutine of its own and the next one to run
// was whichever won the race.
func TestWaitingCallsStartInTheOrderTheyWereQueued(t *testing.T) {
	release := make(chan struct{})
	fn, seen := orderedFunction(t, release)
	dir := t.TempDir()
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns})
	var want []string
	for i := range 200 {
		c := call("fifo-" + strconv.Itoa(i))
		c.Callback = ""
		if err := w.Enqueue(c); err != nil {
			t.Fatal(err)
		}
		want = append(want, c.CallID)
	}
	close(release)
	waitEntries(t, dir, 0)
	w.Stop()
	if got := seen(); !slices.Equal(got, want) {
		t.Errorf("calls started in the order %v, want %v", got, want)
	}
}

// Calls a previous run accepted are replayed in the order they were
// journaled. Until 2026-12-07 a replay read the journal in the order of its
// file names, which began with the call id, and then raced as above.
func TestReplayedCallsStartInJournalOrder(t *testing.T) {
	release := make(chan struct{})
	close(release)
	fn, seen := orderedFunction(t, release)
	dir := t.TempDir()
	j := openJournal(t, dir)
	var want []string
	for i := range 20 {
		c := call("z-" + strconv.Itoa(20-i)) // ids whose order is not the journal's
		c.Callback = ""
		if _, err := j.Put(c); err != nil {
			t.Fatal(err)
		}
		want = append(want, c.CallID)
	}
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: j, Functions: fns, Replicas: fns})
	if err := w.Replay(); err != nil {
		t.Fatal(err)
	}
	waitEntries(t, dir, 0)
	w.Stop()
	if got := seen(); !slices.Equal(got, want) {
		t.Errorf("replayed calls started in the order %v, want %v", got, want)
	}
}
