package provider

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/shopfaas/shop/dev/faaslocal/hopbyhop"
	"github.com/shopfaas/shop/dev/faaslocal/queue"
	"github.com/shopfaas/shop/internal/loopback"
)

// maxAsyncBody caps what an async invocation may queue.
const maxAsyncBody = 8 << 20

// finder reports whether a function is deployed (functions.Store).
type finder interface {
	Exists(name string) bool
}

// asyncHandler is /async-function/{name}[/path]: the call is journaled and
// answered 202 with its X-Call-Id (the client's, or a new one), its
// X-Start-Time and X-Served-By; the queue
// runs it later and POSTs the answer to X-Callback-Url when given. 404 for
// a function that is not deployed, 400 for a callback that is not an
// http(s) URL or not an allowed target (Callbacks), 413 above 8 MiB, 503
// when the call could not be stored or the runtime is stopping.
func asyncHandler(fns finder, q Queue, callbacks Callbacks, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vars := mux.Vars(r)
		name, ok := splitName(vars["name"])
		if !ok || !fns.Exists(name) {
			http.Error(w, fmt.Sprintf("function %q not found", vars["name"]), http.StatusNotFound)
			return
		}
		callback, err := callbacks.check(r.Header.Get("X-Callback-Url"))
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
		switch err := q.Enqueue(call); {
		case errors.Is(err, queue.ErrStopping):
			http.Error(w, "the gateway is stopping: send the call again later", http.StatusServiceUnavailable)
			return
		case err != nil:
			log.Error("async call not queued", "function", name, "call_id", call.CallID, "err", err.Error())
			http.Error(w, "could not queue the call", http.StatusServiceUnavailable)
			return
		}
		// As the CE gateway's call-id middleware, around its queued proxy,
		// answers: the call's X-Start-Time and X-Served-By.
		w.Header().Set("X-Call-Id", call.CallID)
		w.Header().Set("X-Start-Time", call.Header.Get("X-Start-Time"))
		w.Header().Set("X-Served-By", servedBy)
		w.WriteHeader(http.StatusAccepted)
	}
}

// Callbacks decides where an async call's answer may be posted
// (X-Callback-Url): the gateway's own /function/* on loopback (a function
// that takes the answer), and the host:port targets the runtime was started
// with. Anything else could make the runtime post a function's answer to any
// service the developer's machine reaches (issue 12, finding 1). The
// OpenFaaS CE queue-worker posts to any URL; faasd's gateway is not reachable
// from outside the host, and ours is behind the same rule plus this one.
type Callbacks struct {
	// Gateway is the gateway API's own listen address (host:port).
	Gateway string
	// Allow lists further host:port targets (faas-local -callback-allow).
	Allow []string
}

// Allowed reports whether raw may be posted to (nil) or why not; the
// queue rechecks replayed calls with it.
func (c Callbacks) Allowed(raw string) error {
	_, err := c.check(raw)
	return err
}

// errCallbackRefused is the answer to every callback Callbacks refuses.
var errCallbackRefused = errors.New("X-Callback-Url must be an http(s) URL naming this gateway's /function/* " +
	"or a target faas-local was started with (-callback-allow host:port)")

// check returns raw when it may be posted to: empty, the gateway's own
// /function/* over http on a loopback host, or an http(s) URL whose
// host:port (the scheme's default port when none is written) is in Allow.
func (c Callbacks) check(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", errCallbackRefused
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	target := net.JoinHostPort(strings.ToLower(u.Hostname()), port)
	if _, gwPort, err := net.SplitHostPort(c.Gateway); err == nil && port == gwPort && u.Scheme == "http" &&
		loopback.Host(u.Host) && strings.HasPrefix(u.Path, "/function/") && path.Clean(u.Path) == strings.TrimSuffix(u.Path, "/") {
		return raw, nil
	}
	for _, a := range c.Allow {
		if h, p, err := net.SplitHostPort(a); err == nil && net.JoinHostPort(strings.ToLower(h), p) == target {
			return raw, nil
		}
	}
	return "", errCallbackRefused
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

// newCall is the queued form of r: its header without X-Callback-Url and
// the hop-by-hop fields (in OpenFaaS the queue-worker's call goes through
// the gateway, which removes them), with
// X-Call-Id and X-Start-Time set as the gateway sets them. The rest,
// Authorization included, is journaled: the call needs it when it runs, as
// faas-provider's QueueRequest keeps the whole header; the journal is 0600
// files in a 0700 directory (queue.OpenJournal).
func newCall(r *http.Request, name, path string, body []byte, callback string) queue.Call {
	callID := r.Header.Get("X-Call-Id")
	if callID == "" {
		id, _ := uuid.NewV7() // fails only without a random source; the zero id still queues
		callID = id.String()
	}
	header := r.Header.Clone()
	hopbyhop.Remove(header) // the worker sends it to the replica as it is
	header.Del("X-Callback-Url")
	header.Set("X-Call-Id", callID)
	header.Set("X-Start-Time", strconv.FormatInt(time.Now().UnixNano(), 10))
	return queue.Call{Function: name, Method: r.Method, Path: path, Query: r.URL.RawQuery,
		Header: header, Body: body, Callback: callback, CallID: callID}
}
