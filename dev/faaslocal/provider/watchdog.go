package provider

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
)

// servedBy is the X-Served-By of every synchronous call, as the OpenFaaS CE
// gateway answers openfaas-ce/<version>.
const servedBy = "faas-local/" + version

// callHeaders is what the OpenFaaS gateway does to every synchronous call
// (its call-id middleware): an X-Call-Id, kept when the caller sent one,
// and X-Start-Time (Unix nanoseconds) on the request and the answer, and
// X-Served-By on the answer. fnserve puts the call id in every log line.
func callHeaders(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := strconv.FormatInt(time.Now().UTC().UnixNano(), 10)
		if r.Header.Get("X-Call-Id") == "" {
			id := uuid.NewString()
			r.Header.Set("X-Call-Id", id)
			w.Header().Set("X-Call-Id", id)
		}
		r.Header.Set("X-Start-Time", start)
		w.Header().Set("X-Start-Time", start)
		w.Header().Set("X-Served-By", servedBy)
		next(w, r)
	}
}

// watchdog is what of-watchdog (mode=http) does in front of each function's
// process: the call gets the function's exec_timeout (its environment, as
// the watchdog reads it), shortened by an X-Timeout header of a Go duration
// no longer than exec_timeout (0s or less: no timeout for the call, as
// of-watchdog; ignored when exec_timeout is 0: no timeout;
// of-watchdog's 30 s when the environment gives none it can read); a
// call past it is answered 504 with an empty body and X-OpenFaaS-Internal:
// of-watchdog, typed as faas-provider's proxy types of-watchdog's untyped
// 504 (contentType: the request's Content-Type, else text/plain); every
// answer carries X-Duration-Seconds. Before that, the
// gateway's scale from zero (wake), from the same look-up of the function:
// one per call.
func watchdog(fns waker, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		var timeout time.Duration
		if name, ok := splitName(mux.Vars(r)["name"]); ok {
			if st, err := fns.Status(name); err == nil {
				wake(fns, name, st)
				timeout = execTimeout(st, r.Header.Get("X-Timeout"))
			}
		}
		ctx, cancel := r.Context(), context.CancelFunc(func() {})
		if timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, timeout)
		}
		defer cancel()
		ww := &watchdogWriter{ResponseWriter: w, ctx: ctx, started: started, request: r.Header}
		next(ww, r.WithContext(ctx))
	}
}

// Timeouts is the watchdog's deadline for a caller outside the gateway's
// handlers: the async queue's worker (queue.Timeouts), whose calls in
// OpenFaaS go through the gateway to the function's of-watchdog, which
// applies exec_timeout and X-Timeout to them as to any call.
type Timeouts struct {
	// Functions is the function store (functions.Store).
	Functions describer
}

// ExecTimeout is the deadline of a call to name with header h, as the
// watchdog gives it to a synchronous call; 0 when there is none
// (exec_timeout 0, or name is not deployed: the caller's 404).
func (t Timeouts) ExecTimeout(name string, h http.Header) time.Duration {
	st, err := t.Functions.Status(name)
	if err != nil {
		return 0
	}
	return execTimeout(st, h.Get("X-Timeout"))
}

// defaultExecTimeout is of-watchdog's exec_timeout when the function's
// environment gives none it can read.
const defaultExecTimeout = 30 * time.Second

// execTimeout is the timeout of one call of the function whose status is st.
func execTimeout(st types.FunctionStatus, header string) time.Duration {
	limit := parseTimeout(st.EnvVars)
	if limit <= 0 {
		return 0
	}
	// As of-watchdog's getTimeout: any duration up to exec_timeout is the
	// call's, and one that is not positive (X-Timeout: 0s) is no deadline.
	if d, err := time.ParseDuration(header); err == nil && d <= limit {
		return max(d, 0)
	}
	return limit
}

// parseTimeout reads exec_timeout from a function's environment as
// of-watchdog reads it (config.New): bare seconds (0 or more) or a Go
// duration; unset, or anything else, defaultExecTimeout. 0 or less is no
// timeout.
func parseTimeout(env map[string]string) time.Duration {
	v, ok := env["exec_timeout"]
	if !ok {
		return defaultExecTimeout
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return defaultExecTimeout
	}
	return d
}

// watchdogWriter sets X-Duration-Seconds on the answer and turns the
// proxy's failure after the deadline into the watchdog's 504.
type watchdogWriter struct {
	http.ResponseWriter
	ctx      context.Context
	started  time.Time
	request  http.Header // the call's, for the 504's Content-Type
	wrote    bool
	timedOut bool
}

func (w *watchdogWriter) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	h := w.Header()
	h["X-Duration-Seconds"] = []string{strconv.FormatFloat(time.Since(w.started).Seconds(), 'f', 6, 64)} // fmt's %f
	if status >= 500 && errors.Is(w.ctx.Err(), context.DeadlineExceeded) {
		w.timedOut = true
		h.Set("Content-Type", contentType(w.request, nil))
		h.Del("Content-Length")
		h.Del("X-Content-Type-Options")
		h.Set("X-OpenFaaS-Internal", "of-watchdog")
		w.ResponseWriter.WriteHeader(http.StatusGatewayTimeout)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *watchdogWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.timedOut {
		return len(b), nil // the watchdog's 504 has no body
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streamed answers through.
func (w *watchdogWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *watchdogWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
