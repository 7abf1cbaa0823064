package faaslocal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/proxy"
	"github.com/openfaas/faas-provider/types"
)

// Version is reported by /system/info.
const Version = "0.1.0"

// nameExpr is faas-provider's NameExpression: what a function path segment may hold.
const nameExpr = "[-a-zA-Z_0-9.]+"

// maxSystemBody caps the JSON bodies of the /system endpoints.
const maxSystemBody = 1 << 20

// maxAsyncBody caps what an async invocation may queue in memory.
const maxAsyncBody = 8 << 20

// gatewayHandler routes the OpenFaaS gateway API like faas-provider's
// bootstrap.Serve, on a router of our own (bootstrap's is a package global
// bound to every interface).
func (rt *Runtime) gatewayHandler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/system/functions", rt.listFunctions).Methods(http.MethodGet)
	r.HandleFunc("/system/functions", rt.deployFunction(false)).Methods(http.MethodPost)
	r.HandleFunc("/system/functions", rt.deployFunction(true)).Methods(http.MethodPut)
	r.HandleFunc("/system/functions", rt.deleteFunction).Methods(http.MethodDelete)
	r.HandleFunc("/system/function/{name:"+nameExpr+"}", rt.functionStatus).Methods(http.MethodGet)
	r.HandleFunc("/system/scale-function/{name:"+nameExpr+"}", rt.scaleFunction).Methods(http.MethodPost)
	r.HandleFunc("/system/info", rt.info).Methods(http.MethodGet)
	r.HandleFunc("/system/namespaces", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, []string{Namespace})
	}).Methods(http.MethodGet)
	r.HandleFunc("/system/secrets", rt.secrets).Methods(http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete)
	r.HandleFunc("/system/logs", rt.logsHandler()).Methods(http.MethodGet)

	invoke := rt.invokeHandler()
	r.HandleFunc("/function/{name:"+nameExpr+"}", invoke)
	r.HandleFunc("/function/{name:"+nameExpr+"}/", invoke)
	r.HandleFunc("/function/{name:"+nameExpr+"}/{params:.*}", invoke)
	r.HandleFunc("/async-function/{name:"+nameExpr+"}", rt.asyncInvoke).Methods(http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodGet)
	r.HandleFunc("/async-function/{name:"+nameExpr+"}/{params:.*}", rt.asyncInvoke).Methods(http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodGet)
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "OK")
	}).Methods(http.MethodGet, http.MethodHead)
	return r
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers a failed operation as faasd does: a plain-text message with
// the status its error class maps to.
func fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, errInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, errNotFound):
		status = http.StatusNotFound
	case errors.Is(err, errExists):
		status = http.StatusConflict
	}
	http.Error(w, err.Error(), status)
}

func decodeBody(r *http.Request, dst any) error {
	if r.Body == nil {
		return fmt.Errorf("%w: request body is required", errInvalid)
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxSystemBody)).Decode(dst); err != nil {
		return fmt.Errorf("%w: malformed JSON body", errInvalid)
	}
	return nil
}

// splitName removes the ".<namespace>" suffix go-sdk's InvokeFunction adds.
func splitName(raw string) (string, bool) {
	name, ns, found := strings.Cut(raw, ".")
	if found && ns != Namespace {
		return "", false
	}
	return name, true
}

func checkNamespace(r *http.Request) error {
	if ns := r.URL.Query().Get("namespace"); ns != "" && ns != Namespace {
		return fmt.Errorf("%w: namespace %q", errNotFound, ns)
	}
	return nil
}

func (rt *Runtime) listFunctions(w http.ResponseWriter, r *http.Request) {
	if err := checkNamespace(r); err != nil {
		fail(w, err)
		return
	}
	rt.mu.Lock()
	out := []types.FunctionStatus{}
	for _, name := range slices.Sorted(maps.Keys(rt.fns)) {
		out = append(out, status(rt.fns[name]))
	}
	rt.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (rt *Runtime) functionStatus(w http.ResponseWriter, r *http.Request) {
	if err := checkNamespace(r); err != nil {
		fail(w, err)
		return
	}
	name, _ := splitName(mux.Vars(r)["name"])
	rt.mu.Lock()
	fn := rt.fns[name]
	var st types.FunctionStatus
	if fn != nil {
		st = status(fn)
	}
	rt.mu.Unlock()
	if fn == nil {
		fail(w, fmt.Errorf("function %q: %w", name, errNotFound))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (rt *Runtime) deployFunction(update bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var spec types.FunctionDeployment
		if err := decodeBody(r, &spec); err != nil {
			fail(w, err)
			return
		}
		if err := rt.deploy(spec, update); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

func (rt *Runtime) deleteFunction(w http.ResponseWriter, r *http.Request) {
	var req types.DeleteFunctionRequest
	if err := decodeBody(r, &req); err != nil {
		fail(w, err)
		return
	}
	if req.FunctionName == "" {
		fail(w, fmt.Errorf("%w: functionName is required", errInvalid))
		return
	}
	if err := rt.remove(req.FunctionName); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (rt *Runtime) scaleFunction(w http.ResponseWriter, r *http.Request) {
	var req types.ScaleServiceRequest
	if err := decodeBody(r, &req); err != nil {
		fail(w, err)
		return
	}
	name, _ := splitName(mux.Vars(r)["name"])
	if err := rt.scale(name, req.Replicas); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// systemInfo is the gateway's /system/info shape (what go-sdk's GetInfo
// decodes): the provider's types.ProviderInfo wrapped with the gateway version.
type systemInfo struct {
	Arch     string             `json:"arch"`
	Provider types.ProviderInfo `json:"provider"`
	Version  types.VersionInfo  `json:"version"`
}

func (rt *Runtime) info(w http.ResponseWriter, _ *http.Request) {
	v := types.VersionInfo{Release: Version, SHA: "local"}
	writeJSON(w, http.StatusOK, systemInfo{Arch: runtime.GOARCH, Version: v,
		Provider: types.ProviderInfo{Name: "faas-local", Orchestration: "process", Version: &v}})
}

func (rt *Runtime) secrets(w http.ResponseWriter, r *http.Request) {
	if err := checkNamespace(r); err != nil {
		fail(w, err)
		return
	}
	if r.Method == http.MethodGet {
		list, err := rt.listSecrets()
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, list)
		return
	}
	var s types.Secret
	if err := decodeBody(r, &s); err != nil {
		fail(w, err)
		return
	}
	var err error
	status := http.StatusOK
	switch r.Method {
	case http.MethodPost:
		err, status = rt.putSecret(s, true), http.StatusCreated
	case http.MethodPut:
		err = rt.putSecret(s, false)
	case http.MethodDelete:
		err = rt.deleteSecret(s.Name)
	}
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(status)
}

// logRequester answers faas-provider log queries from the log rings.
type logRequester struct{ rt *Runtime }

// Query implements logs.Requester.
func (q logRequester) Query(ctx context.Context, req logs.Request) (<-chan logs.Message, error) {
	q.rt.mu.Lock()
	ring := q.rt.logs[req.Name]
	q.rt.mu.Unlock()
	if ring == nil {
		return nil, fmt.Errorf("function %q: %w", req.Name, errNotFound)
	}
	return ring.query(ctx, req), nil
}

func (rt *Runtime) logsHandler() http.HandlerFunc {
	h := logs.NewLogHandlerFunc(logRequester{rt}, 30*time.Minute)
	return func(w http.ResponseWriter, r *http.Request) {
		name, ok := splitName(r.URL.Query().Get("name"))
		rt.mu.Lock()
		ring := rt.logs[name]
		rt.mu.Unlock()
		if !ok || ring == nil {
			fail(w, fmt.Errorf("function %q: %w", name, errNotFound))
			return
		}
		h(w, r)
	}
}

// resolver picks an available replica round-robin, waiting up to
// ResolveWait for one to become available.
type resolver struct{ rt *Runtime }

// Resolve implements proxy.BaseURLResolver.
func (s resolver) Resolve(name string) (url.URL, error) {
	addr, err := s.rt.pick(context.Background(), name)
	if err != nil {
		return url.URL{}, err
	}
	return url.URL{Scheme: "http", Host: addr}, nil
}

func (rt *Runtime) pick(ctx context.Context, name string) (string, error) {
	deadline := time.NewTimer(rt.cfg.ResolveWait)
	defer deadline.Stop()
	for {
		rt.mu.Lock()
		fn := rt.fns[name]
		changed := rt.changed
		var addr string
		if fn != nil && len(fn.replicas) > 0 {
			start := fn.rr
			fn.rr++
			for i := range fn.replicas {
				if a, ok := fn.replicas[(int(start)+i)%len(fn.replicas)].addr(); ok {
					addr = a
					break
				}
			}
		}
		rt.mu.Unlock()
		switch {
		case fn == nil:
			return "", fmt.Errorf("function %q: %w", name, errNotFound)
		case addr != "":
			return addr, nil
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline.C:
			return "", fmt.Errorf("no replica of %q is available", name)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// countInvocation returns false when the function does not exist.
func (rt *Runtime) countInvocation(name string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	fn := rt.fns[name]
	if fn == nil {
		return false
	}
	atomic.AddUint64(&fn.invoked, 1)
	return true
}

// invokeHandler is faas-provider's proxy behind a check that the function
// exists (404 otherwise) and the namespace suffix go-sdk adds.
func (rt *Runtime) invokeHandler() http.HandlerFunc {
	p := proxy.NewHandlerFunc(types.FaaSConfig{ReadTimeout: 5 * time.Minute}, resolver{rt}, false)
	return func(w http.ResponseWriter, r *http.Request) {
		vars := mux.Vars(r)
		name, ok := splitName(vars["name"])
		if !ok || !rt.countInvocation(name) {
			http.Error(w, fmt.Sprintf("function %q not found", vars["name"]), http.StatusNotFound)
			return
		}
		vars = maps.Clone(vars)
		vars["name"] = name
		p(w, mux.SetURLVars(r, vars))
	}
}

// asyncInvoke queues an invocation in memory and answers 202 with its call
// id; the result is POSTed to X-Callback-Url when given, with X-Call-Id,
// X-Function-Name, X-Function-Status and X-Duration-Seconds, as the
// OpenFaaS queue-worker does. Accepted calls are journaled in the state
// directory first and replayed after a restart (asyncjournal.go).
func (rt *Runtime) asyncInvoke(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	name, ok := splitName(vars["name"])
	rt.mu.Lock()
	exists := rt.fns[name] != nil
	rt.mu.Unlock()
	if !ok || !exists {
		http.Error(w, fmt.Sprintf("function %q not found", vars["name"]), http.StatusNotFound)
		return
	}
	callback := r.Header.Get("X-Callback-Url")
	if callback != "" {
		u, err := url.Parse(callback)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			http.Error(w, "X-Callback-Url must be an http(s) URL", http.StatusBadRequest)
			return
		}
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxAsyncBody+1))
		if err != nil {
			http.Error(w, "could not read body", http.StatusBadRequest)
			return
		}
		if len(b) > maxAsyncBody {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		body = b
	}
	callID := r.Header.Get("X-Call-Id")
	if callID == "" {
		id, _ := uuid.NewV7()
		callID = id.String()
	}
	header := r.Header.Clone()
	header.Del("X-Callback-Url")
	header.Set("X-Call-Id", callID)
	header.Set("X-Start-Time", strconv.FormatInt(time.Now().UnixNano(), 10))
	call := asyncCall{name: name, method: r.Method, path: "/" + vars["params"], query: r.URL.RawQuery,
		header: header, body: body, callback: callback, callID: callID}
	if err := rt.journal(call); err != nil {
		rt.log.Error("async journal", "call_id", callID, "err", err.Error())
		http.Error(w, "could not queue the call", http.StatusServiceUnavailable)
		return
	}
	rt.async.Go(func() { rt.runAsync(call) })
	w.Header().Set("X-Call-Id", callID)
	w.WriteHeader(http.StatusAccepted)
}

type asyncCall struct {
	name, method, path, query string
	header                    http.Header
	body                      []byte
	callback, callID          string
}

func (rt *Runtime) runAsync(c asyncCall) {
	ctx, cancel := context.WithTimeout(rt.ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	status, respHeader, respBody := rt.invokeDirect(ctx, c)
	if rt.ctx.Err() != nil {
		return // stopping: the journal keeps the call for the next start
	}
	defer rt.forget(c)
	rt.log.Debug("async invocation done", "function", c.name, "call_id", c.callID, "status", status)
	if c.callback == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.callback, bytes.NewReader(respBody))
	if err != nil {
		return
	}
	if ct := respHeader.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("X-Call-Id", c.callID)
	req.Header.Set("X-Function-Name", c.name)
	req.Header.Set("X-Function-Status", strconv.Itoa(status))
	req.Header.Set("X-Duration-Seconds", strconv.FormatFloat(time.Since(start).Seconds(), 'f', 6, 64))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		rt.log.Warn("async callback failed", "function", c.name, "call_id", c.callID, "err", err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
}

// invokeDirect calls a replica of the function; failures become a status
// (503 none available, 502 unreachable) as the synchronous path reports them.
func (rt *Runtime) invokeDirect(ctx context.Context, c asyncCall) (int, http.Header, []byte) {
	if !rt.countInvocation(c.name) {
		return http.StatusNotFound, http.Header{}, []byte("function not found")
	}
	addr, err := rt.pick(ctx, c.name)
	if err != nil {
		return http.StatusServiceUnavailable, http.Header{}, []byte("no replica available")
	}
	u := url.URL{Scheme: "http", Host: addr, Path: c.path, RawQuery: c.query}
	req, err := http.NewRequestWithContext(ctx, c.method, u.String(), bytes.NewReader(c.body))
	if err != nil {
		return http.StatusBadRequest, http.Header{}, []byte("bad request")
	}
	req.Header = c.header
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return http.StatusBadGateway, http.Header{}, []byte("function unreachable")
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxAsyncBody))
	return res.StatusCode, res.Header, b
}
