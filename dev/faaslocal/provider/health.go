package provider

import (
	"io"
	"net/http"
)

// healthHandler is GET|HEAD /healthz: 200 OK while the gateway API serves.
func healthHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "OK")
	}
}
