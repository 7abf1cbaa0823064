package provider

import (
	"log/slog"
	"net/http"

	"github.com/openfaas/faas-provider/types"
)

// deployer runs a new function or replaces one (functions.Store).
type deployer interface {
	Deploy(spec types.FunctionDeployment) error
}

// deployHandler is POST /system/functions: 202 once the function's replicas
// are starting; 400 for a spec that cannot run (bad name, another
// namespace, a missing secret, nothing to execute).
func deployHandler(fns deployer, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var spec types.FunctionDeployment
		if err := decode(r, &spec); err != nil {
			fail(w, log, err)
			return
		}
		if err := checkSpecNamespace(spec.Namespace); err != nil {
			fail(w, log, err)
			return
		}
		if err := fns.Deploy(spec); err != nil {
			fail(w, log, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}
