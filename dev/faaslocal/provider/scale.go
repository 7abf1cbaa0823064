package provider

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/internal/fault"
)

// scaler sets a function's replica count (functions.Store).
type scaler interface {
	Scale(name string, replicas uint64) error
}

// scaleHandler is POST /system/scale-function/{name}: 202 once the count is
// set (surplus replicas stopped, new ones starting); 404 for a function that
// is not deployed. As OpenFaaS's gateway does, a count below 1 is raised to 1
// (the runtime clamps one above its maximum, as the gateway clamps to 5), so
// a script that scales to 0 here does what it does on faasd. The body must
// name the function the path names: faasd scales the body's serviceName and
// OpenFaaS on Kubernetes the path's, so a request that names only one of
// them would not do the same on both (400). Another namespace is refused
// as deploy and describe refuse it: 400 in the body, 404 in the query.
func scaleHandler(fns scaler, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req types.ScaleServiceRequest
		if err := decode(r, &req); err != nil {
			fail(w, log, err)
			return
		}
		if err := checkNamespaces(r, req.Namespace); err != nil {
			fail(w, log, err)
			return
		}
		name, _ := splitName(mux.Vars(r)["name"])
		if body, _ := splitName(req.ServiceName); body != name {
			fail(w, log, fault.E(fault.Invalid, codeInvalid, fmt.Sprintf("serviceName %q does not name the function of "+
				"the path, %q: faasd scales the body's serviceName, OpenFaaS on Kubernetes the path's", req.ServiceName, name)))
			return
		}
		if err := fns.Scale(name, max(req.Replicas, 1)); err != nil {
			fail(w, log, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}
