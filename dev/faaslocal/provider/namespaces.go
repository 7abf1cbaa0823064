package provider

import "net/http"

// namespacesHandler is GET /system/namespaces: the one namespace.
func namespacesHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, []string{Namespace})
	}
}

// namespaceNotImplemented is GET /system/namespace/{name}, answered as
// faas-provider's bootstrap answers it for a provider without namespace
// management (faasd among them): 501 Not Implemented.
func namespaceNotImplemented(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "Feature not implemented in this version of OpenFaaS", http.StatusNotImplemented)
}
