package provider

import "net/http"

// namespacesHandler is GET /system/namespaces: the one namespace.
func namespacesHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, []string{Namespace})
	}
}
