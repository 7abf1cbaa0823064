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

// infoHandler is GET /system/info: provider faas-local, orchestration process.
func infoHandler() http.HandlerFunc {
	v := types.VersionInfo{Release: version, SHA: "local"}
	info := systemInfo{Arch: runtime.GOARCH, Version: v,
		Provider: types.ProviderInfo{Name: "faas-local", Orchestration: "process", Version: &v}}
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, info)
	}
}
