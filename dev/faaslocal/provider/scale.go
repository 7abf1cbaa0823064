package provider

import (
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
)

// scaler sets a function's replica count (functions.Store).
type scaler interface {
	Scale(name string, replicas uint64) error
}

// scaleHandler is POST /system/scale-function/{name}: 202 once the count is
// set (surplus replicas stopped, new ones starting); 404 for a function
// that is not deployed, 400 above the runtime's maximum.
func scaleHandler(fns scaler, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req types.ScaleServiceRequest
		if err := decode(r, &req); err != nil {
			fail(w, log, err)
			return
		}
		name, _ := splitName(mux.Vars(r)["name"])
		if err := fns.Scale(name, req.Replicas); err != nil {
			fail(w, log, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}
