package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopfaas/shop/internal/gatewayurl"
)

// userAgent is the User-Agent of the worker's calls, the CE queue-worker's.
const userAgent = "openfaas-ce/nats-queue-worker"

// maxResponse caps what the worker keeps of a function's answer; a longer
// one is answered 502 rather than posted cut short.
const maxResponse = 8 << 20

// Functions is what the worker asks of the function store.
type Functions interface {
	// WaitDeployed returns nil once name is deployed (at once when it is),
	// told so by the store, or ctx's error when ctx ends first.
	WaitDeployed(ctx context.Context, name string) error
	// Invoked counts one invocation; false when name is not deployed.
	Invoked(name string) bool
}

// Replicas is what the worker asks of the supervisor.
type Replicas interface {
	// Pick returns an available replica's host:port, waiting until ctx is done.
	Pick(ctx context.Context, name string) (string, error)
	// WaitReady waits until every replica of name is available.
	WaitReady(ctx context.Context, names ...string) error
}

// Waker is what the worker asks of the gateway before it picks a replica
// (provider.Waker): a function scaled to zero has no replica to pick until
// it is woken, as a synchronous call wakes it.
type Waker interface {
	// Wake scales name up when it has no replica; it returns without
	// waiting for the new replicas to be available.
	Wake(name string)
}

// Timeouts is what the worker asks of the gateway's watchdog before it
// invokes a replica (provider.Timeouts): in OpenFaaS the queue-worker
// invokes through the gateway, so the function's of-watchdog cuts an async
// call at exec_timeout, or at a shorter X-Timeout the caller sent, as it
// cuts a synchronous one.
type Timeouts interface {
	// ExecTimeout is the deadline of a call to name with header h; 0 for none.
	ExecTimeout(name string, h http.Header) time.Duration
}

// ErrStopping is Enqueue's answer once Stop has begun: the call is not
// journaled, and its caller answers that it was not accepted.
var ErrStopping = errors.New("the async queue is stopping")

// ErrReplayed is a second Replay's answer: the first one's calls are
// running already, and a second would run them again.
var ErrReplayed = errors.New("the async journal was replayed already")

// Config is what a Worker needs. Zero durations get the defaults per field.
type Config struct {
	// Journal keeps accepted calls until they are done.
	Journal *Journal
	// Functions counts invocations.
	Functions Functions
	// Replicas chooses the replica each call goes to.
	Replicas Replicas
	// Wake wakes a function scaled to zero before its replica is picked;
	// nil leaves such a call to wait ResolveWait and be answered 503.
	Wake Waker
	// Timeouts gives each call's request to its replica the deadline the
	// function's watchdog gives it (exec_timeout, X-Timeout), within
	// Timeout; a call past it is answered as the watchdog answers it.
	// Nil leaves every call Timeout alone.
	Timeouts Timeouts
	// MaxInflight is how many calls are invoked (or their callbacks posted)
	// at once; the others wait their turn in the journal (default 1, as
	// faasd runs its queue-worker: max_inflight=1).
	MaxInflight int
	// Timeout bounds one call's invocation, from its turn (default 5m).
	Timeout time.Duration
	// CallbackTimeout bounds the POST of a call's answer to its callback,
	// which gets its own time so that a call that ran out of Timeout is
	// still answered (default 1m).
	CallbackTimeout time.Duration
	// ResolveWait is how long a call waits for an available replica before
	// it is answered 503 (default 5s).
	ResolveWait time.Duration
	// ReplayWait is how long a replayed call waits for its function to be
	// deployed and ready before it is left for the next start (default 2m).
	ReplayWait time.Duration
	// CloseWait is how long Close lets running calls finish before it cuts
	// them short; cut calls stay in the journal (default 5s).
	CloseWait time.Duration
	// Log receives the worker's diagnostics (default slog.Default()).
	Log *slog.Logger
	// CallbackAllowed checks, at Replay, the callback of a call a previous
	// run accepted against today's rules (the gateway checks new calls
	// before Enqueue): a callback it refuses is dropped and the call still
	// runs. Nil allows every callback.
	CallbackAllowed func(callback string) error
}

func (c *Config) setDefaults() {
	if c.MaxInflight <= 0 {
		c.MaxInflight = 1
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.CallbackTimeout <= 0 {
		c.CallbackTimeout = time.Minute
	}
	if c.ResolveWait <= 0 {
		c.ResolveWait = 5 * time.Second
	}
	if c.ReplayWait <= 0 {
		c.ReplayWait = 2 * time.Minute
	}
	if c.CloseWait <= 0 {
		c.CloseWait = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Worker runs accepted calls, each in its own goroutine.
type Worker struct {
	cfg     Config
	client  *http.Client
	ctx     context.Context // cancelled by Close once CloseWait is over
	cancel  context.CancelFunc
	calls   sync.WaitGroup
	turns   *line        // a call holds a turn while it is invoked or answered
	running atomic.Int64 // calls being invoked or answered

	// mu orders Enqueue (read) against Stop and Replay (write): no call is
	// journaled once Stop has begun (its goroutine would escape Stop's wait),
	// and Replay reads the journal only when every call Enqueue wrote is in
	// enqueued.
	mu       sync.RWMutex
	stopping bool
	// stopped is closed when Stop begins: calls still waiting for their
	// turn leave it to the journal at once.
	stopped chan struct{}
	// enqueued holds the journal entries of the calls Enqueue runs: Replay
	// leaves them alone, or a call accepted before Replay would run twice.
	enqueued sync.Map
	// replaying holds, by function, the calls Enqueue accepted while that
	// function's replayed calls wait for it to be ready (written by Replay
	// under mu): they join the line behind the replayed ones, never before.
	replaying map[string]*held
	// replayed is set by the first Replay (under mu): the calls it read are
	// in no enqueued set, so a second one would run them again.
	replayed bool
}

// held is what a function's replay keeps back: the calls accepted since
// Replay read the journal, until the replayed calls are in the line.
type held struct {
	mu       sync.Mutex
	released bool
	calls    []Call
}

// NewWorker returns a worker with no calls.
func NewWorker(cfg Config) *Worker {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	// A redirect is the answer, as the gateway's proxy takes it: neither a
	// function's answer nor a callback target can send the worker elsewhere.
	return &Worker{cfg: cfg, client: &http.Client{CheckRedirect: gatewayurl.NoRedirect}, ctx: ctx, cancel: cancel,
		turns: &line{free: cfg.MaxInflight}, stopped: make(chan struct{})}
}

// Enqueue journals c and runs it in the background; the caller acknowledges
// the call only when Enqueue returned nil. Once Stop has begun it returns
// ErrStopping without journaling c.
func (w *Worker) Enqueue(c Call) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.stopping {
		return fmt.Errorf("queue call %s: %w", c.CallID, ErrStopping)
	}
	c, err := w.cfg.Journal.Put(c)
	if err != nil {
		return fmt.Errorf("journal call %s: %w", c.CallID, err)
	}
	w.enqueued.Store(c.Entry, true)
	if h := w.replaying[c.Function]; h != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.released {
			h.calls = append(h.calls, c) // its turn comes after the replayed calls (release)
			return nil
		}
	}
	// The call joins the line here, not in its goroutine: a call queued
	// while a turn is free would otherwise take it ahead of an earlier one
	// whose goroutine had not yet run.
	wt := w.turns.join(w.cfg.Journal.place(c.Entry))
	w.calls.Go(func() { w.run(c, wt) })
	return nil
}

// Replay runs the calls a previous run accepted but did not finish, each
// once its function is deployed and ready. Unreadable entries stay in the
// journal and are reported in the error. Calls this worker's Enqueue
// accepted are already running and are not replayed, however early they
// came. A call Enqueue accepts for a function whose replayed calls wait
// for it to be ready waits behind them: the journal's order holds. Replay
// runs once per worker: a second call runs nothing and returns
// ErrReplayed, even when the first failed to read the journal (the entries
// it could not read wait there for the next start).
func (w *Worker) Replay() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.replayed {
		return ErrReplayed
	}
	w.replayed = true
	if w.stopping {
		return nil // the journal keeps them for the next start
	}
	calls, err := w.cfg.Journal.Pending()
	// Each function's calls take their turns in journal order, once it is
	// deployed and ready: a function that is late does not hold up another's.
	var functions []string
	byFunction := map[string][]Call{}
	for _, c := range calls {
		if _, ok := w.enqueued.Load(c.Entry); ok {
			continue
		}
		w.cfg.Log.Info("replaying an async call accepted by a previous run", "function", c.Function, "call_id", c.CallID)
		if c.Callback != "" && w.cfg.CallbackAllowed != nil {
			if err := w.cfg.CallbackAllowed(c.Callback); err != nil {
				w.cfg.Log.Warn("replayed async call: its callback is no longer allowed and is dropped",
					"function", c.Function, "call_id", c.CallID, "err", err.Error())
				c.Callback = ""
			}
		}
		if _, ok := byFunction[c.Function]; !ok {
			functions = append(functions, c.Function)
		}
		byFunction[c.Function] = append(byFunction[c.Function], c)
	}
	if w.replaying == nil {
		w.replaying = map[string]*held{}
	}
	for _, name := range functions {
		h := &held{}
		w.replaying[name] = h
		w.calls.Go(func() {
			ctx, cancel := context.WithTimeout(w.ctx, w.cfg.ReplayWait)
			defer cancel()
			// A stop ends the wait at once: nothing would start meanwhile.
			go func() {
				select {
				case <-w.stopped:
					cancel()
				case <-ctx.Done():
				}
			}()
			// A function deployed through the API after the start comes later
			// than the stack's: the store tells when.
			ready := w.cfg.Functions.WaitDeployed(ctx, name) == nil && w.cfg.Replicas.WaitReady(ctx, name) == nil
			if !ready {
				w.release(h, nil) // its calls stay in the journal for the next start
				return
			}
			w.release(h, byFunction[name])
		})
	}
	return err
}

// release puts a function's replayed calls, then the calls h kept back,
// into the line, all at once, each in its place: one joining only when the
// one before it got its turn could find a later call there, whose turn
// would then come first. Calls Enqueue accepts afterwards join as usual.
func (w *Worker) release(h *held, replayed []Call) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released = true
	calls := slices.Concat(replayed, h.calls)
	h.calls = nil
	slices.SortStableFunc(calls, func(a, b Call) int {
		return w.cfg.Journal.place(a.Entry).compare(w.cfg.Journal.place(b.Entry))
	})
	waiters := make([]waiter, len(calls))
	for i, c := range calls {
		waiters[i] = w.turns.join(w.cfg.Journal.place(c.Entry))
	}
	for i, c := range calls {
		w.calls.Go(func() { w.run(c, waiters[i]) })
	}
}

// Stop refuses new calls (Enqueue answers ErrStopping), leaves the calls
// waiting for their turn to the journal, lets running calls finish for
// CloseWait, then cuts the rest short (they stay in the journal
// and run again at the next start) and waits for their goroutines. Nothing
// it does can fail.
func (w *Worker) Stop() {
	w.mu.Lock()
	if !w.stopping {
		w.stopping = true
		close(w.stopped)
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.calls.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.CloseWait):
		w.cfg.Log.Info("async calls still running are cut short; the journal keeps them", "running", w.running.Load())
	}
	w.cancel()
	<-done
}

// run waits for its turn, wt (MaxInflight calls at once, in journal order),
// invokes c and posts
// the answer to its callback, with the function's answer headers and
// X-Call-Id, X-Function-Name, X-Function-Status and X-Duration-Seconds as
// the OpenFaaS queue-worker does, then removes c from the journal. A call cut short by Stop, waiting
// for its turn, in its invocation or in its callback, stays in the journal.
func (w *Worker) run(c Call, wt waiter) {
	if !w.turns.wait(wt, w.stopped) {
		return
	}
	defer w.turns.give()
	w.runTurn(c)
}

// runTurn is run once c holds its turn.
func (w *Worker) runTurn(c Call) {
	w.running.Add(1)
	defer w.running.Add(-1)
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
	defer cancel()
	start := time.Now()
	status, header, body := w.invoke(ctx, c)
	if w.ctx.Err() != nil {
		return
	}
	w.cfg.Log.Debug("async invocation done", "function", c.Function, "call_id", c.CallID, "status", status)
	if c.Callback != "" && !w.answer(c, status, header, body, time.Since(start)) {
		return
	}
	w.done(c)
}

// answer posts c's answer to its callback and reports whether c is finished:
// false when Stop cut the POST short, so that the journal keeps c and the
// next start answers it. A callback that failed otherwise is not retried, as
// the queue-worker does not retry it. The POST has its own CallbackTimeout:
// the call's context may have run out with the call.
func (w *Worker) answer(c Call, status int, header http.Header, body []byte, took time.Duration) bool {
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Callback, bytes.NewReader(body))
	if err != nil {
		w.cfg.Log.Warn("async callback not posted", "function", c.Function, "call_id", c.CallID, "err", err.Error())
		return true
	}
	// The function's answer headers, as the queue-worker copies them
	// (ETag, Location, its own headers: the callback is the only place the
	// caller sees the answer), then the worker's own over them.
	for k, v := range header {
		req.Header[k] = slices.Clone(v)
	}
	req.Header.Set("X-Call-Id", c.CallID)
	req.Header.Set("X-Function-Name", c.Function)
	req.Header.Set("X-Function-Status", strconv.Itoa(status))
	req.Header.Set("X-Duration-Seconds", strconv.FormatFloat(took.Seconds(), 'f', 6, 64))
	res, err := w.client.Do(req)
	if err != nil {
		if w.ctx.Err() != nil {
			w.cfg.Log.Info("async callback cut short by the stop; the journal keeps the call",
				"function", c.Function, "call_id", c.CallID)
			return false
		}
		w.cfg.Log.Warn("async callback failed", "function", c.Function, "call_id", c.CallID, "err", err.Error())
		return true
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return true
}

// done removes c from the journal, and then from enqueued. It holds the
// read lock, so a Replay reading the journal sees c either in the journal
// and in enqueued (and skips it) or in neither: a call finished between
// Replay's read and its check ran a second time. A journal entry that could
// not be removed stays in enqueued too, so that this run does not replay it.
func (w *Worker) done(c Call) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if err := w.cfg.Journal.Done(c); err != nil {
		w.cfg.Log.Warn("async journal", "call_id", c.CallID, "err", err.Error())
		return
	}
	w.enqueued.Delete(c.Entry)
}

// invoke calls a replica of c's function; failures become the status the
// synchronous path would answer (404 not deployed, 503 no replica available,
// 500 no answer from the replica, the watchdog's 504 past the function's
// exec_timeout or X-Timeout, 504 past Timeout); an answer cut short, or
// longer than maxResponse, is 502. A function scaled to zero is woken
// first, as the synchronous path wakes it.
func (w *Worker) invoke(ctx context.Context, c Call) (int, http.Header, []byte) {
	if !w.cfg.Functions.Invoked(c.Function) {
		return http.StatusNotFound, http.Header{}, []byte("function not found")
	}
	if w.cfg.Wake != nil {
		w.cfg.Wake.Wake(c.Function)
	}
	pickCtx, cancel := context.WithTimeout(ctx, w.cfg.ResolveWait)
	addr, err := w.cfg.Replicas.Pick(pickCtx, c.Function)
	cancel()
	if err != nil {
		return http.StatusServiceUnavailable, http.Header{}, []byte("no replica available")
	}
	u := url.URL{Scheme: "http", Host: addr, Path: c.Path, RawQuery: c.Query}
	// The watchdog's deadline starts, as of-watchdog's does, when the call
	// reaches the function, after the wait for a replica.
	callCtx, cancelCall := ctx, context.CancelFunc(func() {})
	if w.cfg.Timeouts != nil {
		if d := w.cfg.Timeouts.ExecTimeout(c.Function, c.Header); d > 0 {
			callCtx, cancelCall = context.WithTimeout(ctx, d)
		}
	}
	defer cancelCall()
	// cut reports whether the watchdog's deadline, not Timeout or Stop, ended the call.
	cut := func() bool { return errors.Is(callCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil }
	// A POST whatever the call's method, as OpenFaaS's queue worker sends it:
	// the gateway queues POSTs only, and a journal written before 2026-12-05
	// may hold calls of another method.
	req, err := http.NewRequestWithContext(callCtx, http.MethodPost, u.String(), bytes.NewReader(c.Body))
	if err != nil {
		return http.StatusBadRequest, http.Header{}, []byte("bad request")
	}
	// The queue-worker's own User-Agent over the client's, as it sends the
	// call (openfaas/nats-queue-worker, main.go).
	req.Header = c.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("User-Agent", userAgent)
	res, err := w.client.Do(req)
	if err != nil && cut() {
		return watchdogTimeout(c)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return http.StatusGatewayTimeout, http.Header{}, []byte("function timed out")
	}
	if err != nil {
		// No answer at all: as faas-provider's proxy answers a synchronous
		// call (the gateway's forwarder too), and what production's
		// queue-worker, which invokes through the gateway, posts.
		h := http.Header{}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-OpenFaaS-Internal", "proxy")
		return http.StatusInternalServerError, h, fmt.Appendf(nil, "Can't reach service for: %s.\n", c.Function)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxResponse+1))
	switch {
	case err != nil && cut():
		// As of-watchdog's answer cut short at its deadline: a 504, not
		// the status the function began with.
		return watchdogTimeout(c)
	case err != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The function answered its headers, then ran past Timeout in its
		// body: a timeout, not the status it began with.
		return http.StatusGatewayTimeout, http.Header{}, []byte("function timed out")
	case err != nil:
		return http.StatusBadGateway, http.Header{}, []byte("function unreachable")
	case len(b) > maxResponse:
		// Posted cut, under the function's status, it would read as the
		// whole answer.
		w.cfg.Log.Warn("async call: the function's answer is longer than the queue keeps",
			"function", c.Function, "call_id", c.CallID, "limit_bytes", maxResponse)
		return http.StatusBadGateway, http.Header{}, []byte("the function's answer exceeds 8 MiB, more than the local queue keeps")
	}
	return res.StatusCode, res.Header, b
}

// watchdogTimeout is the answer of a call its function's watchdog cut at
// exec_timeout or X-Timeout, as production's queue-worker gets it through
// the gateway: of-watchdog's 504 with no body, marked X-OpenFaaS-Internal:
// of-watchdog, typed on the way back by faas-provider's proxy (the call's
// Content-Type, else text/plain, as provider's contentType).
func watchdogTimeout(c Call) (int, http.Header, []byte) {
	h := http.Header{}
	ct := c.Header.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	h.Set("Content-Type", ct)
	h.Set("X-OpenFaaS-Internal", "of-watchdog")
	return http.StatusGatewayTimeout, h, []byte{}
}

// line hands out turns (MaxInflight at once) to the calls waiting for one in
// the order they were journaled (their entries' places, Journal.place), as
// faasd's queue-worker takes calls from its queue: a turn given back goes
// to the first call waiting, not to whichever goroutine wins it.
type line struct {
	mu      sync.Mutex
	free    int
	waiting []waiter // by place
}

type waiter struct {
	place place
	turn  chan struct{} // closed when the turn is the waiter's
}

// join puts the call at p in the line: its waiter's turn is given at once
// when one is free and no call waits, else in p's order (give).
func (l *line) join(p place) waiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	wt := waiter{place: p, turn: make(chan struct{})}
	if l.free > 0 && len(l.waiting) == 0 {
		l.free--
		close(wt.turn)
		return wt
	}
	i, _ := slices.BinarySearchFunc(l.waiting, p, func(w waiter, p place) int { return w.place.compare(p) })
	l.waiting = slices.Insert(l.waiting, i, wt)
	return wt
}

// waiters is how many calls wait for a turn.
func (l *line) waiters() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiting)
}

// wait waits for wt's turn (join); false once stop is closed, even when the
// turn came too (the call is left to the journal, its turn, if given,
// passed on).
func (l *line) wait(wt waiter, stop <-chan struct{}) bool {
	select {
	case <-wt.turn:
		// Given with stop closed too, the select may have picked either:
		// a stop starts no new call, so the turn goes on.
		select {
		case <-stop:
			l.give()
			return false
		default:
			return true
		}
	case <-stop:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.IndexFunc(l.waiting, func(w waiter) bool { return w.turn == wt.turn }); i >= 0 {
		l.waiting = slices.Delete(l.waiting, i, i+1)
		return false
	}
	// Given the turn as stop came: it goes to the next one.
	l.giveLocked()
	return false
}

// give hands a turn back: to the first call waiting, else to the line.
func (l *line) give() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.giveLocked()
}

func (l *line) giveLocked() {
	if len(l.waiting) == 0 {
		l.free++
		return
	}
	close(l.waiting[0].turn)
	l.waiting = l.waiting[1:]
}
