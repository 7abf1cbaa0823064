package queue_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
		c := uncalled("fifo-" + strconv.Itoa(i))
		if err := w.Enqueue(c); err != nil {
			t.Fatal(err)
		}
		want = append(want, c.CallID)
	}
	close(release)
	startedInOrder(t, dir, w, seen, want)
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
		c := uncalled("z-" + strconv.Itoa(20-i)) // ids whose order is not the journal's
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
	startedInOrder(t, dir, w, seen, want)
}

// ids are the call ids of calls, in their order.
func ids(calls []queue.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.CallID)
	}
	return out
}

// writeUnsequenced writes c as a runtime older than 2026-12-07 named its
// entry (name: "<id>.json" until 2026-12-03, then "<id>.<random>.json"),
// as if written at at.
func writeUnsequenced(t *testing.T, dir, name string, c queue.Call, at time.Time) {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, at, at); err != nil {
		t.Fatal(err)
	}
}

// A call accepted after a restart comes after the calls the journal kept,
// even when the clock went back across the restart (an entry's sequence is
// the clock's nanoseconds). Until 2026-12-08 the sequence was not seeded
// from the journal: the new call's entry sorted before the kept ones.
func TestACallAcceptedAfterARestartComesAfterTheKeptOnesWhateverTheClock(t *testing.T) {
	dir := t.TempDir()
	before := openJournal(t, dir)
	for _, id := range []string{"kept-1", "kept-2"} {
		if _, err := before.Put(call(id)); err != nil {
			t.Fatal(err)
		}
	}
	defer queue.SetClock(func() time.Time { return time.Now().Add(-time.Hour) })()
	after := openJournal(t, dir) // the restart, with the clock an hour back
	if _, err := after.Put(call("accepted-after")); err != nil {
		t.Fatal(err)
	}
	want := []string{"kept-1", "kept-2", "accepted-after"}
	if got := ids(pending(t, openJournal(t, dir))); !slices.Equal(got, want) {
		t.Errorf("pending in the order %v, want %v", got, want)
	}
}

// Entries named before sequences (before 2026-12-07) were written before
// every entry that has one, and among themselves in the order of their
// files' modification times: that is their place, whatever their names.
// Until 2026-12-08 a name gave the place, so such an entry sorted after the
// sequenced ones (a letter after a digit) or among them (an id of digits).
func TestEntriesNamedBeforeSequencesComeFirstInTheOrderTheyWereWritten(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now()
	old := []struct{ name, id string }{
		{"b-first.0123456789abcdef.json", "b-first"},
		{"a-second.json", "a-second"},
		{"98765432109876543210.fedcba9876543210.json", "98765432109876543210"},
	}
	for i, o := range old {
		c := call(o.id)
		writeUnsequenced(t, dir, o.name, c, t0.Add(time.Duration(i-len(old))*time.Hour))
	}
	if _, err := openJournal(t, dir).Put(call("sequenced")); err != nil {
		t.Fatal(err)
	}
	want := []string{"b-first", "a-second", "98765432109876543210", "sequenced"}
	if got := ids(pending(t, openJournal(t, dir))); !slices.Equal(got, want) {
		t.Errorf("pending in the order %v, want %v", got, want)
	}
}

// After a restart the calls start in the order they were queued: the ones
// an older runtime journaled, then the previous run's, then those accepted
// since, with the clock stepped back across the restart. Until 2026-12-08
// the previous run's went first, the call accepted since before them, and
// the older runtime's entry last.
func TestCallsStartInTheOrderTheyWereQueuedAcrossARestart(t *testing.T) {
	release := make(chan struct{})
	fn, seen := orderedFunction(t, release)
	var once sync.Once
	releaseFirst := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseFirst) // before fn.Close, which waits for the first call
	dir := t.TempDir()
	old := uncalled("older-runtime")
	writeUnsequenced(t, dir, "older-runtime.json", old, time.Now().Add(-time.Hour))
	previous := openJournal(t, dir)
	for _, id := range []string{"previous-1", "previous-2"} {
		c := uncalled(id)
		if _, err := previous.Put(c); err != nil {
			t.Fatal(err)
		}
	}
	defer queue.SetClock(func() time.Time { return time.Now().Add(-time.Hour) })()
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns})
	if err := w.Replay(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first replayed call runs and two wait", func() bool { return len(seen()) == 1 && w.Waiting() == 2 })
	since := uncalled("accepted-since")
	if err := w.Enqueue(since); err != nil {
		t.Fatal(err)
	}
	releaseFirst()
	startedInOrder(t, dir, w, seen, []string{"older-runtime", "previous-1", "previous-2", "accepted-since"})
}

// uncalled is call(id) with no callback: these tests watch the order in
// which the function sees the calls.
func uncalled(id string) queue.Call {
	c := call(id)
	c.Callback = ""
	return c
}

// startedInOrder waits until dir's journal is empty, stops w, and wants the
// function to have seen the calls in the order want.
func startedInOrder(t *testing.T, dir string, w *queue.Worker, seen func() []string, want []string) {
	t.Helper()
	waitEntries(t, dir, 0)
	w.Stop()
	if got := seen(); !slices.Equal(got, want) {
		t.Errorf("calls started in the order %v, want %v", got, want)
	}
}

// waitFor waits until cond holds, 10 s at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A call accepted while its function's replayed calls wait for it to be
// ready takes its turn after them, in journal order. Until 2026-12-08 it
// joined the line at once, took the free turn, and ran first.
func TestACallAcceptedWhileItsFunctionsReplayWaitsRunsAfterIt(t *testing.T) {
	release := make(chan struct{})
	close(release)
	fn, seen := orderedFunction(t, release)
	dir := t.TempDir()
	j := openJournal(t, dir)
	var want []string
	for _, id := range []string{"replayed-1", "replayed-2"} {
		c := uncalled(id)
		if _, err := j.Put(c); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	ready := make(chan struct{})
	fns := lateFunction{oneFunction{strings.TrimPrefix(fn.URL, "http://")}, ready}
	w := queue.NewWorker(queue.Config{Journal: j, Functions: fns, Replicas: fns})
	if err := w.Replay(); err != nil {
		t.Fatal(err)
	}
	since := uncalled("accepted-since")
	if err := w.Enqueue(since); err != nil {
		t.Fatal(err)
	}
	want = append(want, since.CallID)
	close(ready)
	startedInOrder(t, dir, w, seen, want)
}

// A call kept back behind its function's replay still runs when the replay
// gives up waiting for the function (ReplayWait): the replayed calls stay
// in the journal for the next start, the new one is not held with them.
func TestACallKeptBackRunsWhenItsFunctionsReplayGivesUp(t *testing.T) {
	release := make(chan struct{})
	close(release)
	fn, seen := orderedFunction(t, release)
	dir := t.TempDir()
	j := openJournal(t, dir)
	kept := uncalled("kept")
	if _, err := j.Put(kept); err != nil {
		t.Fatal(err)
	}
	fns := lateFunction{oneFunction{strings.TrimPrefix(fn.URL, "http://")}, make(chan struct{})} // never ready
	w := queue.NewWorker(queue.Config{Journal: j, Functions: fns, Replicas: fns, ReplayWait: 200 * time.Millisecond})
	if err := w.Replay(); err != nil {
		t.Fatal(err)
	}
	since := uncalled("accepted-since")
	if err := w.Enqueue(since); err != nil {
		t.Fatal(err)
	}
	waitEntries(t, dir, 1)
	w.Stop()
	if got, want := seen(), []string{"accepted-since"}; !slices.Equal(got, want) {
		t.Errorf("calls started %v, want %v (the replayed one left to the next start)", got, want)
	}
}
