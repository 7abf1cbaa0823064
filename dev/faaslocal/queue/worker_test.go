package queue_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal/queue"
)

// oneFunction is a function store and supervisor with one function, echo,
// whose single replica is addr.
type oneFunction struct{ addr string }

func (oneFunction) WaitDeployed(ctx context.Context, name string) error {
	if name == "echo" {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}
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

// entries counts dir's journal files (Pending would race with the worker's Done).
func entries(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	return len(m)
}

// waitEntries waits up to 10 s until dir's journal holds n entries.
func waitEntries(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for entries(dir) != n {
		if time.Now().After(deadline) {
			t.Fatalf("journal holds %d entries, want %d", entries(dir), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A call Enqueue accepted before Replay read the journal (the gateway serves
// before the runtime replays) runs once: Replay leaves it to the goroutine
// Enqueue started.
func TestACallAcceptedBeforeReplayRunsOnce(t *testing.T) {
	var invoked atomic.Int32
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		invoked.Add(1)
		time.Sleep(300 * time.Millisecond) // still journaled when Replay reads the journal
	}))
	defer fn.Close()
	dir := t.TempDir()
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns})
	c := call("early")
	c.Callback = ""
	if err := w.Enqueue(c); err != nil {
		t.Fatal(err)
	}
	if err := w.Replay(); err != nil {
		t.Fatal(err)
	}
	waitEntries(t, dir, 0)
	w.Stop() // waits for every goroutine, a replayed run's too
	if n := invoked.Load(); n != 1 {
		t.Errorf("the function ran %d times, want 1", n)
	}
}

// A callback that Stop cuts short leaves the call in the journal, to be
// answered at the next start: the call's answer was never delivered.
func TestACallbackCutShortByStopStaysInTheJournal(t *testing.T) {
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "done")
	}))
	defer fn.Close()
	posting := make(chan struct{}, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server sees the worker hang up only once the body is read
		posting <- struct{}{}
		<-r.Context().Done() // answers only when the worker hangs up
	}))
	defer target.Close()
	dir := t.TempDir()
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns,
		CloseWait: 200 * time.Millisecond})
	c := call("cut")
	c.Callback = target.URL + "/cb"
	if err := w.Enqueue(c); err != nil {
		t.Fatal(err)
	}
	select {
	case <-posting:
	case <-time.After(10 * time.Second):
		t.Fatal("the callback was never posted")
	}
	w.Stop()
	if n := entries(dir); n != 1 {
		t.Errorf("journal holds %d entries after a cut callback, want 1", n)
	}
}

// A call that runs past Timeout is still answered (504): its callback has a
// time of its own rather than the call's expired one.
func TestACallPastItsTimeoutIsStillAnswered(t *testing.T) {
	for _, midBody := range []bool{false, true} {
		t.Run(map[bool]string{false: "before its headers", true: "in its body"}[midBody], func(t *testing.T) {
			pastItsTimeout(t, midBody)
		})
	}
}

// pastItsTimeout runs a call whose function stalls past Timeout, before its
// headers or after them, in the middle of its body (a 200 begun: the answer
// is still 504, not the status it began with; helper-133 saw "200 partial").
func pastItsTimeout(t *testing.T, midBody bool) {
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server sees the worker hang up only once the body is read
		if midBody {
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done() // never ends in time
	}))
	defer fn.Close()
	statuses := make(chan string, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		statuses <- r.Header.Get("X-Function-Status")
	}))
	defer target.Close()
	dir := t.TempDir()
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns,
		Timeout: 200 * time.Millisecond})
	defer w.Stop()
	c := call("slow")
	c.Callback = target.URL + "/cb"
	if err := w.Enqueue(c); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-statuses:
		if s != "504" {
			t.Errorf("X-Function-Status %s, want 504", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a call past its timeout got no callback")
	}
	waitEntries(t, dir, 0)
}

// Once Stop has begun no call is accepted: Enqueue answers ErrStopping and
// journals nothing (the gateway answers 503, and the client sends it again).
func TestStopRefusesNewCalls(t *testing.T) {
	dir := t.TempDir()
	fns := oneFunction{"127.0.0.1:1"}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns})
	w.Stop()
	if err := w.Enqueue(call("late")); !errors.Is(err, queue.ErrStopping) {
		t.Errorf("Enqueue after Stop: %v, want ErrStopping", err)
	}
	if n := entries(dir); n != 0 {
		t.Errorf("journal holds %d entries, want 0", n)
	}
}

// Calls are invoked MaxInflight at a time, as faasd's queue-worker runs
// them (max_inflight=1): a burst does not start every call at once. The
// others wait their turn in the journal, and every one runs. Stop leaves
// the calls still waiting for their turn in the journal at once, without
// waiting CloseWait for them.
func TestCallsRunMaxInflightAtATime(t *testing.T) {
	for _, inflight := range []int{1, 3} {
		t.Run(strconv.Itoa(inflight), func(t *testing.T) {
			var now, most, invoked atomic.Int32
			release := make(chan struct{})
			fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := now.Add(1)
				defer now.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				invoked.Add(1)
				<-release
			}))
			defer fn.Close()
			dir := t.TempDir()
			fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
			w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns,
				MaxInflight: inflight})
			const calls = 8
			for i := range calls {
				c := call("burst-" + strconv.Itoa(i))
				c.Callback = ""
				if err := w.Enqueue(c); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for invoked.Load() < int32(inflight) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // time for a call past the limit to start
			if n := invoked.Load(); n != int32(inflight) {
				t.Fatalf("%d calls invoked while the first ones run, want MaxInflight = %d", n, inflight)
			}
			close(release)
			waitEntries(t, dir, 0)
			w.Stop()
			if n, m := invoked.Load(), most.Load(); n != calls || m != int32(inflight) {
				t.Errorf("%d calls invoked, at most %d at once; want %d, %d", n, m, calls, inflight)
			}
		})
	}
}

// Stop does not start the calls still waiting for their turn: they stay in
// the journal for the next start, and only the running one gets CloseWait
// to finish.
func TestStopLeavesWaitingCallsToTheJournal(t *testing.T) {
	var invoked atomic.Int32
	started := make(chan struct{}, 1)
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		invoked.Add(1)
		select {
		case started <- struct{}{}:
		default:
		}
		time.Sleep(100 * time.Millisecond)
	}))
	defer fn.Close()
	dir := t.TempDir()
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns,
		CloseWait: 2 * time.Second})
	for i := range 5 {
		c := call("wait-" + strconv.Itoa(i))
		c.Callback = ""
		if err := w.Enqueue(c); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no call started")
	}
	began := time.Now()
	w.Stop()
	if took := time.Since(began); took > time.Second {
		t.Errorf("Stop took %s, want about the running call's 100ms", took.Round(time.Millisecond))
	}
	if n, ran := entries(dir), invoked.Load(); n != 4 || ran != 1 {
		t.Errorf("journal holds %d entries after Stop, %d calls invoked; want 4 (waiting) and 1", n, ran)
	}
}

// A callback carries the function's answer headers, as the OpenFaaS
// queue-worker copies them onto its POST (the callback is the only place
// the caller sees the answer: its ETag, its Location, its own headers), with
// the worker's X-Call-Id, X-Function-Name and X-Function-Status over any
// the function wrote.
func TestACallbackCarriesTheFunctionsAnswerHeaders(t *testing.T) {
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("ETag", `"v7"`)
		h.Set("Location", "/jobs/42")
		h["X-Job-Step"] = []string{"parsed", "stored"}
		h.Set("X-Call-Id", "forged-by-the-function")
		h.Set("X-Function-Status", "299")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":42}`)
	}))
	defer fn.Close()
	got := make(chan http.Header, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	defer target.Close()
	dir := t.TempDir()
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns})
	defer w.Stop()
	c := call("headers")
	c.Callback = target.URL + "/cb"
	if err := w.Enqueue(c); err != nil {
		t.Fatal(err)
	}
	var h http.Header
	select {
	case h = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the callback was never posted")
	}
	for name, want := range map[string][]string{
		"Content-Type":      {"application/json"},
		"Etag":              {`"v7"`},
		"Location":          {"/jobs/42"},
		"X-Job-Step":        {"parsed", "stored"},
		"X-Call-Id":         {"headers"},
		"X-Function-Name":   {"echo"},
		"X-Function-Status": {"201"},
	} {
		if v := h.Values(name); !slices.Equal(v, want) {
			t.Errorf("callback's %s: %q, want %q", name, v, want)
		}
	}
	waitEntries(t, dir, 0)
}

// An answer longer than the worker keeps (8 MiB) is not posted cut short
// under the function's own status, as if it were the whole answer: the
// callback gets 502 and a body that says why.
func TestAnAnswerTooLongToKeepIsNotPostedCut(t *testing.T) {
	const kept = 8 << 20 // the worker's maxResponse
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(make([]byte, kept+1))
	}))
	defer fn.Close()
	type answer struct {
		status string
		body   []byte
	}
	got := make(chan answer, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- answer{r.Header.Get("X-Function-Status"), b}
	}))
	defer target.Close()
	dir := t.TempDir()
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns})
	defer w.Stop()
	c := call("long")
	c.Callback = target.URL + "/cb"
	if err := w.Enqueue(c); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if a.status != "502" || len(a.body) >= kept || !strings.Contains(string(a.body), "8 MiB") {
			t.Errorf("callback: X-Function-Status %s with a body of %d bytes (%.40q), want 502 saying the answer exceeds 8 MiB",
				a.status, len(a.body), a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the callback was never posted")
	}
	waitEntries(t, dir, 0)
}

// A replica that cannot be reached (no answer at all) is answered as the
// synchronous path answers it, and as production's queue-worker, which
// invokes through the gateway, gets it from faas-provider's proxy: 500
// "Can't reach service for: <name>." marked X-OpenFaaS-Internal: proxy
// (until 2026-12-07 the callback got 502 "function unreachable").
func TestAnUnreachableReplicaIsAnswered500(t *testing.T) {
	ln := httptest.NewUnstartedServer(http.NotFoundHandler()).Listener
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there any more
	type answer struct {
		status, internal, body string
	}
	got := make(chan answer, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- answer{r.Header.Get("X-Function-Status"), r.Header.Get("X-OpenFaaS-Internal"), string(b)}
	}))
	defer target.Close()
	dir := t.TempDir()
	fns := oneFunction{addr}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns})
	defer w.Stop()
	c := call("unreachable")
	c.Callback = target.URL + "/cb"
	if err := w.Enqueue(c); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		const want = "Can't reach service for: echo.\n"
		if a.status != "500" || a.body != want || a.internal != "proxy" {
			t.Errorf("callback: X-Function-Status %s, X-OpenFaaS-Internal %q, body %q; want 500, proxy, %q",
				a.status, a.internal, a.body, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the callback was never posted")
	}
	waitEntries(t, dir, 0)
}

// A function sees an async call with the queue-worker's User-Agent, as the
// CE queue-worker (openfaas/nats-queue-worker, main.go) sets it over the
// client's on the call it sends. Until 2026-12-08 the function saw the
// client's.
func TestAnAsyncCallCarriesTheQueueWorkersUserAgent(t *testing.T) {
	got := make(chan string, 1)
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("User-Agent")
	}))
	defer fn.Close()
	dir := t.TempDir()
	fns := oneFunction{strings.TrimPrefix(fn.URL, "http://")}
	w := queue.NewWorker(queue.Config{Journal: openJournal(t, dir), Functions: fns, Replicas: fns})
	defer w.Stop()
	c := call("agent")
	c.Callback = ""
	c.Header.Set("User-Agent", "curl/8.5.0")
	if err := w.Enqueue(c); err != nil {
		t.Fatal(err)
	}
	select {
	case ua := <-got:
		if ua != "openfaas-ce/nats-queue-worker" {
			t.Errorf("the function saw User-Agent %q, want the queue-worker's", ua)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the function")
	}
	waitEntries(t, dir, 0)
}

// lateFunction is oneFunction whose replica is ready only once ready is
// closed.
type lateFunction struct {
	oneFunction
	ready <-chan struct{}
}

func (f lateFunction) WaitReady(ctx context.Context, _ ...string) error {
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A stop starts no call that waits for its turn, not even one whose turn
// comes with the stop: a replayed call whose function gets ready as the
// runtime stops finds the line empty and its turn given at once. Until
// 2026-12-08 the wait picked the turn or the stop at random, and such a
// call started in the stop's wind-down about half the time.
func TestStopStartsNoWaitingCall(t *testing.T) {
	var invoked atomic.Int32
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { invoked.Add(1) }))
	defer fn.Close()
	const rounds = 20
	for i := range rounds {
		dir := t.TempDir()
		j := openJournal(t, dir)
		c := call("replayed-" + strconv.Itoa(i))
		c.Callback = ""
		if _, err := j.Put(c); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		fns := lateFunction{oneFunction{strings.TrimPrefix(fn.URL, "http://")}, ready}
		w := queue.NewWorker(queue.Config{Journal: j, Functions: fns, Replicas: fns, CloseWait: 5 * time.Second})
		if err := w.Replay(); err != nil {
			t.Fatal(err)
		}
		stopped := make(chan struct{})
		go func() { w.Stop(); close(stopped) }()
		<-w.Stopping()
		close(ready) // the function is ready as the stop begins
		<-stopped
		if n := entries(dir); n != 1 {
			t.Fatalf("round %d: journal holds %d entries after Stop, want the replayed call's", i, n)
		}
	}
	if n := invoked.Load(); n != 0 {
		t.Errorf("%d of %d replayed calls started after Stop began, want none", n, rounds)
	}
}

// Replay runs the journal's calls once per worker: a second Replay is an
// error and runs nothing. Until 2026-12-08 a second Replay put every call the
// first one was still running (or waiting to run) in the line again, and the
// function ran it twice.
func TestASecondReplayRunsNothingAgain(t *testing.T) {
	var invoked atomic.Int32
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { invoked.Add(1) }))
	defer fn.Close()
	dir := t.TempDir()
	j := openJournal(t, dir)
	if _, err := j.Put(uncalled("once")); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	fns := lateFunction{oneFunction{strings.TrimPrefix(fn.URL, "http://")}, ready}
	w := queue.NewWorker(queue.Config{Journal: j, Functions: fns, Replicas: fns, MaxInflight: 2})
	if err := w.Replay(); err != nil {
		t.Fatal(err)
	}
	if err := w.Replay(); !errors.Is(err, queue.ErrReplayed) {
		t.Errorf("a second Replay returned %v, want ErrReplayed", err)
	}
	close(ready)
	waitEntries(t, dir, 0)
	w.Stop() // waits for every goroutine, a second replay's too
	if n := invoked.Load(); n != 1 {
		t.Errorf("the function ran %d times, want 1", n)
	}
}

// deployLater is oneFunction deployed only once deployed is closed; asked
// is closed when the worker first asks whether it is deployed.
type deployLater struct {
	oneFunction
	deployed <-chan struct{}
	asked    chan struct{}
	once     *sync.Once
	waits    *atomic.Int32 // calls of WaitDeployed
}

func (f deployLater) isDeployed(name string) bool {
	f.once.Do(func() { close(f.asked) })
	select {
	case <-f.deployed:
		return name == "echo"
	default:
		return false
	}
}

func (f deployLater) Invoked(name string) bool { return f.isDeployed(name) }

func (f deployLater) WaitDeployed(ctx context.Context, name string) error {
	f.waits.Add(1)
	if !f.isDeployed(name) {
		select {
		case <-f.deployed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.oneFunction.WaitDeployed(ctx, name)
}

// A replayed call starts as soon as its function is deployed, told so by
// the function store, not at the next look of a poll. Until 2026-12-08 the
// worker looked every 250 ms, and a replayed call started up to that late.
func TestAReplayedCallStartsWhenItsFunctionIsDeployed(t *testing.T) {
	called := make(chan time.Time, 1)
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called <- time.Now() }))
	defer fn.Close()
	dir := t.TempDir()
	j := openJournal(t, dir)
	if _, err := j.Put(uncalled("replayed")); err != nil {
		t.Fatal(err)
	}
	deployed := make(chan struct{})
	fns := deployLater{oneFunction{strings.TrimPrefix(fn.URL, "http://")}, deployed, make(chan struct{}), new(sync.Once), new(atomic.Int32)}
	w := queue.NewWorker(queue.Config{Journal: j, Functions: fns, Replicas: fns})
	defer w.Stop()
	if err := w.Replay(); err != nil {
		t.Fatal(err)
	}
	select { // the worker found it not deployed yet
	case <-fns.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker never asked whether the function was deployed")
	}
	close(deployed)
	select {
	case <-called:
		// Woken by the store's word, the one wait: a worker that looked
		// again and again (until 2026-12-08 every 250 ms) would not wait on
		// it once.
		if n := fns.waits.Load(); n != 1 {
			t.Errorf("the worker waited on the store %d times, want once", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the replayed call never started")
	}
}
