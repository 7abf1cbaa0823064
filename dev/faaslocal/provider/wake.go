package provider

import (
	"strconv"

	"github.com/openfaas/faas-provider/types"
)

// waker is what scale from zero needs of the function store.
type waker interface {
	describer
	scaler
}

// wake is the OpenFaaS gateway's scale from zero: a call to a deployed
// function scaled to 0 replicas (st, its status) first scales it to its
// com.openfaas.scale.min (at least 1), then waits, like any call, for an
// available replica (Deps.ResolveWait) before it is proxied. The watchdog
// calls it with the status it looked up for the call's timeout.
func wake(fns scaler, name string, st types.FunctionStatus) {
	if st.Replicas != 0 {
		return
	}
	target := uint64(1)
	if st.Labels != nil {
		if n, err := strconv.ParseUint((*st.Labels)["com.openfaas.scale.min"], 10, 64); err == nil && n > 1 {
			target = n
		}
	}
	_ = fns.Scale(name, target) // a function removed meanwhile is the proxy's 404
}
