package provider

import (
	"log/slog"
	"net/http"

	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/internal/fault"
)

// remover stops a function and forgets it, logs and state included
// (functions.Store).
type remover interface {
	Remove(name string) error
}

// deleteHandler is DELETE /system/functions: 202 once the function's
// processes, its logs and its state folder are gone; 404 for a function
// that is not deployed. Another namespace is refused before anything is
// touched, as deploy and describe refuse it: 400 when the body names it (as
// go-sdk and faas-cli send it), 404 when the query does.
func deleteHandler(fns remover, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req types.DeleteFunctionRequest
		if err := decode(r, &req); err != nil {
			fail(w, log, err)
			return
		}
		if err := checkNamespaces(r, req.Namespace); err != nil {
			fail(w, log, err)
			return
		}
		if req.FunctionName == "" {
			fail(w, log, fault.E(fault.Invalid, codeInvalid, "functionName is required"))
			return
		}
		if err := fns.Remove(req.FunctionName); err != nil {
			fail(w, log, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}
