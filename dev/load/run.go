package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one closed-loop run. At least one of Duration and
// Requests must be set; the run stops at whichever comes first.
type Config struct {
	// Workers is the number of concurrent closed loops (default 1).
	Workers int
	// Duration stops the workers from starting new requests after it has
	// passed; requests in flight then finish (bounded by Client's timeout).
	Duration time.Duration
	// Requests stops the run after that many requests in total (0: no limit).
	Requests int
	// Client sends the requests (default: a client whose transport keeps one
	// idle connection per worker and times requests out after 30s).
	Client *http.Client
	// Request builds the n-th request (n counts from 0 over all workers) for
	// a worker. An error stops that worker and is returned by Run.
	Request func(worker, n int) (*http.Request, error)
	// Check, when set, inspects every answer; an error counts the request as
	// failed (StatusCheck) whatever its status was.
	Check func(res *http.Response, body []byte) error
	// Counted, when set, names the outcomes (Result.Status keys) that
	// Result.Requests and Result.Latency count, and so RPS: a checkout's
	// figures count the orders placed, not the refusals. Result.Status still
	// counts every outcome. Nil counts them all.
	Counted func(status int) bool
}

// Outcome keys of Result.Status that are not HTTP statuses.
const (
	// StatusTransport counts requests that got no answer (refused, timed out).
	StatusTransport = -1
	// StatusCheck counts answers that Config.Check refused.
	StatusCheck = -2
)

// Result is what a run measured.
type Result struct {
	// Requests is the number of requests that completed (with or without an
	// answer) with an outcome Config.Counted accepts.
	Requests int
	// Elapsed is the wall time from the first request to the last answer.
	Elapsed time.Duration
	// Latency holds the latency of every request Requests counts.
	Latency *Histogram
	// Status counts outcomes by HTTP status, StatusTransport and StatusCheck.
	Status map[int]int
	// FirstError is the first transport or check error, for diagnosis.
	FirstError error
}

// RPS is the throughput in completed (and counted) requests per second.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Errors counts the outcomes that ok does not accept (transport and check
// failures are never accepted).
func (r Result) Errors(ok func(status int) bool) int {
	n := 0
	for s, c := range r.Status {
		if s < 0 || !ok(s) {
			n += c
		}
	}
	return n
}

// Success accepts the 2xx statuses.
func Success(status int) bool { return status >= 200 && status < 300 }

// StatusSummary lists the outcomes as "200:1234 409:5 transport:1", sorted.
func (r Result) StatusSummary() string {
	var b strings.Builder
	for _, s := range slices.Sorted(maps.Keys(r.Status)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		switch s {
		case StatusTransport:
			b.WriteString("transport")
		case StatusCheck:
			b.WriteString("check")
		default:
			fmt.Fprintf(&b, "%d", s)
		}
		fmt.Fprintf(&b, ":%d", r.Status[s])
	}
	return b.String()
}

// worker is one loop's private tally, merged after the run.
type worker struct {
	hist   *Histogram
	status map[int]int
	n      int
	err    error // first transport or check error
	fatal  error // Request failed: the worker stopped
}

// Run drives the load until Duration has passed, Requests have completed or
// ctx is done, and returns what it measured. It returns an error for a
// configuration it cannot run or when Request failed; failed requests are
// outcomes in the Result, not errors.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Request == nil {
		return Result{}, errors.New("load: Config.Request is required")
	}
	if cfg.Duration <= 0 && cfg.Requests <= 0 {
		return Result{}, errors.New("load: set Duration or Requests, so that the run ends by itself")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: cfg.Workers, MaxIdleConnsPerHost: cfg.Workers, IdleConnTimeout: 30 * time.Second}}
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var next atomic.Int64
	workers := make([]*worker, cfg.Workers)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{hist: NewHistogram(), status: map[int]int{}}
		workers[i] = w
		wg.Go(func() {
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if cfg.Requests > 0 && n >= cfg.Requests {
					return
				}
				req, err := cfg.Request(i, n)
				if err != nil {
					w.fatal = fmt.Errorf("load: build request %d: %w", n, err)
					return
				}
				w.do(client, req, cfg.Check, cfg.Counted)
			}
		})
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start), Latency: NewHistogram(), Status: map[int]int{}}
	var fatal []error
	for _, w := range workers {
		res.Requests += w.n
		res.Latency.Merge(w.hist)
		for s, c := range w.status {
			res.Status[s] += c
		}
		if res.FirstError == nil {
			res.FirstError = w.err
		}
		if w.fatal != nil {
			fatal = append(fatal, w.fatal)
		}
	}
	return res, errors.Join(fatal...)
}

// do sends one request and records its outcome, and its latency when counted
// accepts the outcome (or is nil). The run's deadline is not the request's
// context, so a request in flight at the end is answered, not counted as a
// failure.
func (w *worker) do(client *http.Client, req *http.Request, check func(*http.Response, []byte) error, counted func(int) bool) {
	begin := time.Now()
	res, err := client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	took := time.Since(begin)
	var status int
	switch {
	case err != nil:
		status = StatusTransport
		if w.err == nil {
			w.err = err
		}
	case check != nil:
		status = res.StatusCode
		if cerr := check(res, body); cerr != nil {
			status = StatusCheck
			if w.err == nil {
				w.err = fmt.Errorf("status %d: %w", res.StatusCode, cerr)
			}
		}
	default:
		status = res.StatusCode
	}
	w.status[status]++
	if counted == nil || counted(status) {
		w.hist.Record(took)
		w.n++
	}
}
