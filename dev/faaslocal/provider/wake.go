package provider

import (
	"strconv"

	"github.com/openfaas/faas-provider/types"
)

// waker is what scale from zero needs of the function store.
type waker interface {
	describer
	// Wake scales name to replicas when it still has none, in the
	// background: it returns at once (the store's lock may be held by a
	// redeploy for minutes), and the call waits for a replica with its own
	// context (functions.Store).
	Wake(name string, replicas uint64)
}

// wake is the OpenFaaS gateway's scale from zero: a call to a deployed
// function scaled to 0 replicas (st, its status) asks for it to be scaled to
// its com.openfaas.scale.min (at least 1), then waits, like any call, for an
// available replica (Deps.ResolveWait, within the call's own timeout) before
// it is proxied. The watchdog calls it with the status it looked up for the
// call's timeout.
func wake(fns waker, name string, st types.FunctionStatus) {
	if st.Replicas != 0 {
		return
	}
	target := uint64(1)
	if st.Labels != nil {
		if n, err := strconv.ParseUint((*st.Labels)["com.openfaas.scale.min"], 10, 64); err == nil && n > 1 {
			target = n
		}
	}
	fns.Wake(name, target) // a function removed meanwhile is the proxy's 404
}

// Waker is wake for a caller outside the gateway's handlers: the async
// queue's worker wakes a function before it picks a replica (queue.Waker),
// so that an async call to a function scaled to zero runs as a synchronous
// one does rather than waiting for a replica that never starts.
type Waker struct {
	// Functions is the function store (functions.Store).
	Functions waker
}

// Wake asks for name to be scaled to its com.openfaas.scale.min (at least
// 1) when it has no replica, and returns at once (the worker then waits for
// a replica under the call's context); a function that is not deployed is
// left to the caller's 404.
func (w Waker) Wake(name string) {
	if st, err := w.Functions.Status(name); err == nil {
		wake(w.Functions, name, st)
	}
}
