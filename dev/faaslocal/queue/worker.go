package queue

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxResponse caps what the worker reads of a function's answer.
const maxResponse = 8 << 20

// Functions is what the worker asks of the function store.
type Functions interface {
	// Exists reports whether name is deployed.
	Exists(name string) bool
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

// Config is what a Worker needs. Zero durations get the defaults per field.
type Config struct {
	// Journal keeps accepted calls until they are done.
	Journal *Journal
	// Functions counts invocations.
	Functions Functions
	// Replicas chooses the replica each call goes to.
	Replicas Replicas
	// Timeout bounds one call: invocation and callback (default 5m).
	Timeout time.Duration
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
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
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
	running atomic.Int64 // calls being invoked or answered
}

// NewWorker returns a worker with no calls.
func NewWorker(cfg Config) *Worker {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Worker{cfg: cfg, client: &http.Client{CheckRedirect: noRedirects}, ctx: ctx, cancel: cancel}
}

// Enqueue journals c and runs it in the background; the caller acknowledges
// the call only when Enqueue returned nil.
func (w *Worker) Enqueue(c Call) error {
	c, err := w.cfg.Journal.Put(c)
	if err != nil {
		return fmt.Errorf("journal call %s: %w", c.CallID, err)
	}
	w.calls.Go(func() { w.run(c) })
	return nil
}

// Replay runs the calls a previous run accepted but did not finish, each
// once its function is deployed and ready. Unreadable entries stay in the
// journal and are reported in the error.
func (w *Worker) Replay() error {
	calls, err := w.cfg.Journal.Pending()
	for _, c := range calls {
		w.cfg.Log.Info("replaying an async call accepted by a previous run", "function", c.Function, "call_id", c.CallID)
		if c.Callback != "" && w.cfg.CallbackAllowed != nil {
			if err := w.cfg.CallbackAllowed(c.Callback); err != nil {
				w.cfg.Log.Warn("replayed async call: its callback is no longer allowed and is dropped",
					"function", c.Function, "call_id", c.CallID, "err", err.Error())
				c.Callback = ""
			}
		}
		w.calls.Go(func() {
			ctx, cancel := context.WithTimeout(w.ctx, w.cfg.ReplayWait)
			defer cancel()
			if w.waitDeployed(ctx, c.Function) && w.cfg.Replicas.WaitReady(ctx, c.Function) == nil {
				w.run(c)
			} // else it stays in the journal for the next start
		})
	}
	return err
}

// waitDeployed waits until name is deployed (a function deployed through
// the API after the start comes later than the stack's).
func (w *Worker) waitDeployed(ctx context.Context, name string) bool {
	for !w.cfg.Functions.Exists(name) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
	return true
}

// Stop lets running calls finish for CloseWait, then cuts the rest short
// (they stay in the journal and run again at the next start) and waits for
// their goroutines. Nothing it does can fail.
func (w *Worker) Stop() {
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

// run invokes c and posts the answer to its callback, with X-Call-Id,
// X-Function-Name, X-Function-Status and X-Duration-Seconds as the OpenFaaS
// queue-worker does, then removes c from the journal. A call cut short by
// Close stays in the journal.
func (w *Worker) run(c Call) {
	w.running.Add(1)
	defer w.running.Add(-1)
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
	defer cancel()
	start := time.Now()
	status, header, body := w.invoke(ctx, c)
	if w.ctx.Err() != nil {
		return
	}
	defer w.done(c)
	w.cfg.Log.Debug("async invocation done", "function", c.Function, "call_id", c.CallID, "status", status)
	if c.Callback == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Callback, bytes.NewReader(body))
	if err != nil {
		return
	}
	if ct := header.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("X-Call-Id", c.CallID)
	req.Header.Set("X-Function-Name", c.Function)
	req.Header.Set("X-Function-Status", strconv.Itoa(status))
	req.Header.Set("X-Duration-Seconds", strconv.FormatFloat(time.Since(start).Seconds(), 'f', 6, 64))
	res, err := w.client.Do(req)
	if err != nil {
		w.cfg.Log.Warn("async callback failed", "function", c.Function, "call_id", c.CallID, "err", err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
}

func (w *Worker) done(c Call) {
	if err := w.cfg.Journal.Done(c); err != nil {
		w.cfg.Log.Warn("async journal", "call_id", c.CallID, "err", err.Error())
	}
}

// invoke calls a replica of c's function; failures become the status the
// synchronous path would answer (404 not deployed, 503 no replica available,
// 502 unreachable).
func (w *Worker) invoke(ctx context.Context, c Call) (int, http.Header, []byte) {
	if !w.cfg.Functions.Invoked(c.Function) {
		return http.StatusNotFound, http.Header{}, []byte("function not found")
	}
	pickCtx, cancel := context.WithTimeout(ctx, w.cfg.ResolveWait)
	addr, err := w.cfg.Replicas.Pick(pickCtx, c.Function)
	cancel()
	if err != nil {
		return http.StatusServiceUnavailable, http.Header{}, []byte("no replica available")
	}
	u := url.URL{Scheme: "http", Host: addr, Path: c.Path, RawQuery: c.Query}
	// A POST whatever the call's method, as OpenFaaS's queue worker sends it:
	// the gateway queues POSTs only, and a journal written before 2026-12-05
	// may hold calls of another method.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(c.Body))
	if err != nil {
		return http.StatusBadRequest, http.Header{}, []byte("bad request")
	}
	req.Header = c.Header
	res, err := w.client.Do(req)
	if err != nil {
		return http.StatusBadGateway, http.Header{}, []byte("function unreachable")
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	return res.StatusCode, res.Header, b
}

// noRedirects makes the worker's client return a redirect as the answer, as
// the gateway's proxy does: neither a function's answer nor a callback
// target can send the worker elsewhere.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
