package provider

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/openfaas/faas-provider/logs"

	"github.com/shopfaas/shop/internal/fault"
)

// maxFollow bounds how long one /system/logs request may stream.
const maxFollow = 30 * time.Minute

// logsHandler is GET /system/logs?name=…: faas-provider's log handler
// (NDJSON of logs.Message; tail, since, instance and follow) over the log
// store, after a 404 for a name that has no logs or another namespace (as
// describe answers; the store holds the runtime's namespace only).
func logsHandler(store Logs, log *slog.Logger) http.HandlerFunc {
	stream := logs.NewLogHandlerFunc(store, maxFollow)
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkNamespace(r); err != nil {
			fail(w, log, err)
			return
		}
		raw := r.URL.Query().Get("name")
		name, ok := splitName(raw)
		if !ok || !store.Has(name) {
			fail(w, log, fault.E(fault.NotFound, codeNotFound, fmt.Sprintf("function %q not found", raw)))
			return
		}
		q := r.URL.Query()
		q.Set("name", name)
		r.URL.RawQuery = q.Encode()
		stream(w, r)
	}
}
