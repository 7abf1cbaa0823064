package provider

import (
	"net/http"
	"runtime"

	"github.com/openfaas/faas-provider/types"
)

// version is the runtime's version in /system/info.
const version = "0.1.0"

// systemInfo is the gateway's /system/info shape (what go-sdk's GetInfo
// decodes): the provider's types.ProviderInfo wrapped with the gateway version.
type systemInfo struct {
	Arch     string             `json:"arch"`
	Provider types.ProviderInfo `json:"provider"`
	Version  types.VersionInfo  `json:"version"`
}

// infoHandler is GET /system/info: provider faas-local, orchestration
// process. The runtime is both a gateway (to faas-cli and go-sdk, which read
// the gateway's shape) and a provider (to a real OpenFaaS gateway put in
// front of it, which reads faas-provider's types.ProviderInfo and wraps it
// itself). The gateway forwards the call with X-Forwarded-Host, which a
// direct client does not send: such a call is answered the provider's shape.
func infoHandler() http.HandlerFunc {
	v := types.VersionInfo{Release: version, SHA: "local"}
	provider := types.ProviderInfo{Name: "faas-local", Orchestration: "process", Version: &v}
	info := systemInfo{Arch: runtime.GOARCH, Version: v, Provider: provider}
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-Host") != "" {
			writeJSON(w, http.StatusOK, provider)
			return
		}
		writeJSON(w, http.StatusOK, info)
	}
}
