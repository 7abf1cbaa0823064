// Package provider is the local runtime's OpenFaaS gateway API in the shape
// of faas-provider: one handler per endpoint, one file each, each built from
// the narrow part of the runtime it needs (the function store, the secret
// store, the log store, the supervisor's replica choice, the async queue).
// New collects them in faas-provider's types.FaaSHandlers, plus the gateway's
// own /async-function route; Router mounts them as bootstrap.Serve does, but
// on a handler the caller serves on a loopback listener of its own
// (bootstrap.Serve listens on every interface and keeps a global router).
//
// Cross-cutting rules belong around the handlers, not inside them: decorate
// the FaaSHandlers fields before Router (as bootstrap decorates them with
// basic auth), or wrap what Router returns.
package provider

import (
	"context"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/dev/faaslocal/queue"
)

// Namespace is the only namespace the local runtime has, as on faasd.
const Namespace = "openfaas-fn"

// Functions is everything the handlers ask of the function store
// (functions.Store); each handler takes only its own part.
type Functions interface {
	deployer
	updater
	remover
	scaler
	waker
	lister
	finder
	invocationCounter
}

// Logs is the log store (logstore.Store).
type Logs interface {
	logs.Requester
	// Has reports whether name has logs (it is or was deployed).
	Has(name string) bool
}

// Replicas chooses the replica an invocation goes to (supervisor.Supervisor).
type Replicas interface {
	// Pick returns an available replica's host:port, waiting until ctx is done.
	Pick(ctx context.Context, name string) (string, error)
}

// Queue accepts asynchronous calls (queue.Worker).
type Queue interface {
	// Enqueue stores c durably and runs it later; an error means c was not accepted.
	Enqueue(c queue.Call) error
}

// Deps are the runtime pieces behind the handlers.
type Deps struct {
	Functions Functions
	Secrets   Secrets
	Logs      Logs
	Replicas  Replicas
	Queue     Queue
	// Callbacks are the targets async answers may be posted to.
	Callbacks Callbacks
	// ResolveWait is how long an invocation waits for an available replica
	// before it is answered 503.
	ResolveWait time.Duration
	// Log receives failures the handlers cannot explain to the client.
	Log *slog.Logger
}

// Handlers is the gateway API: faas-provider's handler set (what faasd's
// provider fills) and the gateway's /async-function route, which the real
// gateway hands to its queue-worker.
type Handlers struct {
	types.FaaSHandlers
	// AsyncFunction accepts a call for later (/async-function/{name}[/path]).
	AsyncFunction http.HandlerFunc
}

// New builds every handler from d (Log defaults to slog.Default()).
func New(d Deps) *Handlers {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	return &Handlers{
		FaaSHandlers: types.FaaSHandlers{
			FunctionLister: listHandler(d.Functions, d.Log),
			DeployFunction: deployHandler(d.Functions, d.Log),
			UpdateFunction: updateHandler(d.Functions, d.Log),
			DeleteFunction: deleteHandler(d.Functions, d.Log),
			FunctionStatus: statusHandler(d.Functions, d.Log),
			ScaleFunction:  scaleHandler(d.Functions, d.Log),
			Secrets:        secretsHandler(d.Secrets, d.Log),
			Logs:           logsHandler(d.Logs, d.Log),
			Info:           infoHandler(),
			ListNamespaces: namespacesHandler(),
			Health:         healthHandler(),
			FunctionProxy: callHeaders(watchdog(d.Functions,
				proxyHandler(d.Functions, resolver{replicas: d.Replicas, wait: d.ResolveWait}, d.Log))),
		},
		AsyncFunction: asyncHandler(d.Functions, d.Queue, d.Callbacks, d.Log),
	}
}

// nameExpr is faas-provider's NameExpression: what a function path segment may hold.
const nameExpr = "{name:[-a-zA-Z_0-9.]+}"

// Router routes the gateway API as faas-provider's bootstrap.Serve does
// (same paths, methods and mux variables), plus /async-function. A call to
// a function skips the router's matching (functionsFirst).
func (h *Handlers) Router() http.Handler { return functionsFirst(h.routes(), h.FunctionProxy) }

// routes is the gateway API's router.
func (h *Handlers) routes() *mux.Router {
	r := mux.NewRouter()
	r.HandleFunc("/system/functions", h.FunctionLister).Methods(http.MethodGet)
	r.HandleFunc("/system/functions", h.DeployFunction).Methods(http.MethodPost)
	r.HandleFunc("/system/functions", h.UpdateFunction).Methods(http.MethodPut)
	r.HandleFunc("/system/functions", h.DeleteFunction).Methods(http.MethodDelete)
	r.HandleFunc("/system/function/"+nameExpr, h.FunctionStatus).Methods(http.MethodGet)
	r.HandleFunc("/system/scale-function/"+nameExpr, h.ScaleFunction).Methods(http.MethodPost)
	r.HandleFunc("/system/info", h.Info).Methods(http.MethodGet)
	r.HandleFunc("/system/namespaces", h.ListNamespaces).Methods(http.MethodGet)
	r.HandleFunc("/system/namespace/{name:[-a-zA-Z_0-9.]*}", namespaceNotImplemented).Methods(http.MethodGet)
	r.HandleFunc("/system/secrets", h.Secrets).Methods(http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete)
	r.HandleFunc("/system/logs", h.Logs).Methods(http.MethodGet)

	r.HandleFunc("/function/"+nameExpr, h.FunctionProxy)
	r.HandleFunc("/function/"+nameExpr+"/", h.FunctionProxy)
	r.HandleFunc("/function/"+nameExpr+"/{params:.*}", h.FunctionProxy)
	// POST only, as OpenFaaS's gateway routes an asynchronous call (any
	// other method is 405 there); its queue worker sends every call as a
	// POST, and so does ours.
	r.HandleFunc("/async-function/"+nameExpr, h.AsyncFunction).Methods(http.MethodPost)
	r.HandleFunc("/async-function/"+nameExpr+"/{params:.*}", h.AsyncFunction).Methods(http.MethodPost)
	r.HandleFunc("/healthz", h.Health).Methods(http.MethodGet, http.MethodHead)
	return r
}

// functionsFirst hands a call to a function (/function/<name>, .../,
// .../<params>, a clean path) straight to proxy with the mux variables the
// router would set, and everything else to the router. gorilla/mux tries
// its routes' regular expressions in order, the /system routes first, which
// was a fifth of the gateway's CPU per call in the benchmarks' profiles.
// Paths the router would redirect (not clean) or refuse (a name outside
// nameExpr) still go to the router.
func functionsFirst(router *mux.Router, proxy http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if vars, ok := functionVars(r.URL.Path); ok {
			proxy(w, mux.SetURLVars(r, vars))
			return
		}
		router.ServeHTTP(w, r)
	})
}

// functionVars is what the router's three /function routes set for p, and
// false when p is not such a call or the router would redirect it first.
func functionVars(p string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(p, "/function/")
	if !ok || !cleanPath(p) {
		return nil, false
	}
	name, params, slash := strings.Cut(rest, "/")
	if name == "" || strings.TrimLeft(name, nameChars) != "" {
		return nil, false
	}
	if strings.Contains(params, "\n") { // the router's {params:.*} stops at a newline
		return nil, false
	}
	if slash && params != "" {
		return map[string]string{"name": name, "params": params}, true
	}
	return map[string]string{"name": name}, true
}

// nameChars are the characters of nameExpr's class.
const nameChars = "-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789."

// cleanPath reports whether gorilla/mux would route p as it is rather than
// redirect it to its cleaned form (path.Clean, keeping a trailing slash).
func cleanPath(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}
