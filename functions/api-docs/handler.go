// Package function is api-docs: GET /openapi.yaml answers the contract
// (api/openapi.yaml) with its servers entry pointed at the origin the caller
// used (X-Forwarded-* from Kong and the gateway), and GET /docs the API
// reference page (Swagger UI) whose "Try it out" calls that same origin; see
// internal/apidocs. Anyone may read both; nothing is stored.
//
// The page's assets are vendored at build time into assets/ (make api-docs;
// git ignores them) and embedded, so the image loads nothing at run time and
// the page loads nothing from outside. An image built without them serves
// the document and answers the page with a 503 problem saying how to build
// them.
package function

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/internal/apidocs"
	"github.com/shopfaas/shop/internal/config"
)

// embedded is the assets folder: its README.md always, the vendored
// package's files under apidocs.Dir when make api-docs ran before the build.
//
//go:embed assets
var embedded embed.FS

// Build builds the handler over the contract and the embedded assets; the
// function reads no configuration.
func Build(_ *config.Reader, log *slog.Logger) (http.Handler, error) {
	assets, err := fs.Sub(embedded, "assets/"+apidocs.Dir)
	if err != nil {
		return nil, err
	}
	return New(api.OpenAPI(), assets, log)
}

// New returns the function's handler over doc (the OpenAPI document, YAML)
// and assets (the files of apidocs.Assets at its root). Missing assets are
// logged once here, not on every request.
func New(doc []byte, assets fs.FS, log *slog.Logger) (http.Handler, error) {
	h, err := apidocs.Handler(doc, assets)
	if err != nil {
		return nil, err
	}
	if !apidocs.Present(assets) {
		log.Warn("api-docs: the page's assets are not in this build; /docs answers 503", "fix", "make api-docs before faas-cli build")
	}
	return h, nil
}
