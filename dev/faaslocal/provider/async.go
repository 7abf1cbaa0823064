package provider

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/shopfaas/shop/dev/faaslocal/queue"
)

// maxAsyncBody caps what an async invocation may queue.
const maxAsyncBody = 8 << 20

// finder reports whether a function is deployed (functions.Store).
type finder interface {
	Exists(name string) bool
}

// asyncHandler is /async-function/{name}[/path]: the call is journaled and
// answered 202 with its X-Call-Id (the client's, or a new one); the queue
// runs it later and POSTs the answer to X-Callback-Url when given. 404 for
// a function that is not deployed, 400 for a callback that is not an
// http(s) URL, 413 above 8 MiB, 503 when the call could not be stored.
func asyncHandler(fns finder, q Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vars := mux.Vars(r)
		name, ok := splitName(vars["name"])
		if !ok || !fns.Exists(name) {
			http.Error(w, fmt.Sprintf("function %q not found", vars["name"]), http.StatusNotFound)
			return
		}
		callback, err := callbackURL(r.Header.Get("X-Callback-Url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body, status := readAsyncBody(r)
		if status != 0 {
			http.Error(w, http.StatusText(status), status)
			return
		}
		call := newCall(r, name, "/"+vars["params"], body, callback)
		if err := q.Enqueue(call); err != nil {
			log.Error("async call not queued", "function", name, "call_id", call.CallID, "err", err.Error())
			http.Error(w, "could not queue the call", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Call-Id", call.CallID)
		w.WriteHeader(http.StatusAccepted)
	}
}

// callbackURL checks an X-Callback-Url: empty, or an absolute http(s) URL.
func callbackURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("X-Callback-Url must be an http(s) URL")
	}
	return raw, nil
}

// readAsyncBody reads at most maxAsyncBody; a non-zero status refuses the call.
func readAsyncBody(r *http.Request) ([]byte, int) {
	if r.Body == nil {
		return nil, 0
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAsyncBody+1))
	switch {
	case err != nil:
		return nil, http.StatusBadRequest
	case len(b) > maxAsyncBody:
		return nil, http.StatusRequestEntityTooLarge
	}
	return b, 0
}

// newCall is the queued form of r: its header without X-Callback-Url, with
// X-Call-Id and X-Start-Time set as the gateway sets them.
func newCall(r *http.Request, name, path string, body []byte, callback string) queue.Call {
	callID := r.Header.Get("X-Call-Id")
	if callID == "" {
		id, _ := uuid.NewV7() // fails only without a random source; the zero id still queues
		callID = id.String()
	}
	header := r.Header.Clone()
	header.Del("X-Callback-Url")
	header.Set("X-Call-Id", callID)
	header.Set("X-Start-Time", strconv.FormatInt(time.Now().UnixNano(), 10))
	return queue.Call{Function: name, Method: r.Method, Path: path, Query: r.URL.RawQuery,
		Header: header, Body: body, Callback: callback, CallID: callID}
}
