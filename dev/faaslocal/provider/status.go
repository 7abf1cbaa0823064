package provider

import (
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
)

// describer describes one deployed function (functions.Store).
type describer interface {
	Status(name string) (types.FunctionStatus, error)
}

// statusHandler is GET /system/function/{name}: the function's status with
// its replicas, available replicas and invocation count; 404 for a function
// that is not deployed or another namespace.
func statusHandler(fns describer, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkNamespace(r); err != nil {
			fail(w, log, err)
			return
		}
		name, _ := splitName(mux.Vars(r)["name"])
		st, err := fns.Status(name)
		if err != nil {
			fail(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	}
}
