package provider

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
)

// waker is what scale from zero needs of the function store.
type waker interface {
	describer
	scaler
}

// wake is the OpenFaaS gateway's scale from zero: a call to a deployed
// function scaled to 0 replicas first scales it to its
// com.openfaas.scale.min (at least 1), then waits, like any call, for an
// available replica (Deps.ResolveWait) before it is proxied.
func wake(fns waker, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if name, ok := splitName(mux.Vars(r)["name"]); ok {
			if st, err := fns.Status(name); err == nil && st.Replicas == 0 {
				target := uint64(1)
				if st.Labels != nil {
					if n, err := strconv.ParseUint((*st.Labels)["com.openfaas.scale.min"], 10, 64); err == nil && n > 1 {
						target = n
					}
				}
				_ = fns.Scale(name, target) // a function removed meanwhile is the proxy's 404
			}
		}
		next(w, r)
	}
}
