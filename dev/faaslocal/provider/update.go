package provider

import (
	"log/slog"
	"net/http"

	"github.com/openfaas/faas-provider/types"
)

// updater replaces a deployed function (functions.Store).
type updater interface {
	Update(spec types.FunctionDeployment) error
}

// updateHandler is PUT /system/functions: 202 once the old replicas are
// gone and the new ones are starting; 404 for a function that is not
// deployed, 400 as for a deploy.
func updateHandler(fns updater, log *slog.Logger) http.HandlerFunc {
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
		if err := fns.Update(spec); err != nil {
			fail(w, log, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}
