package provider

import (
	"log/slog"
	"net/http"

	"github.com/openfaas/faas-provider/types"
)

// lister describes every deployed function (functions.Store).
type lister interface {
	List() []types.FunctionStatus
}

// listHandler is GET /system/functions: every deployed function, sorted by
// name; 404 for another namespace.
func listHandler(fns lister, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkNamespace(r); err != nil {
			fail(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, fns.List())
	}
}
