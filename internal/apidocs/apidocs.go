// Package apidocs is the shop's API reference: the contract (api/openapi.yaml)
// at /openapi.yaml, its servers entry pointed at the origin the caller used
// so that "Try it out" calls that same edge, and a Swagger UI page at /docs.
// The api-docs function serves it behind Kong in production and behind the
// local edge in development: one implementation for both.
//
// Swagger UI comes from the npm package swagger-ui-dist (Apache-2.0), pinned
// to Version and checked against Integrity when dev/docassets vendors it at
// build time (make api-docs); the assets reach Handler as a file system
// (the function embeds them). The page loads nothing from outside: its
// script, style sheet and the document all come from the same origin, and
// every answer Handler writes under /docs carries the Content-Security-Policy CSP
// (default-src 'self').
package apidocs

import (
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// The vendored npm package: name, pinned version and the registry's
// integrity of its tarball (npm view swagger-ui-dist@5.35.0 dist.integrity).
const (
	Package   = "swagger-ui-dist"
	Version   = "5.35.0"
	Integrity = "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
)

// Dir is the folder, named after the pinned version, that holds the assets
// in the tree they are vendored into: assets of another version are never
// served as this one's.
const Dir = Package + "-" + Version

// CSP is the Content-Security-Policy of every answer Handler writes under /docs: only the
// page's own origin (images may also be data: URLs, which Swagger UI's
// style sheet uses for its icons; they load nothing). The page repeats it
// in a meta tag without frame-ancestors, which a meta tag cannot carry.
const CSP = metaCSP + "; frame-ancestors 'none'"

const metaCSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"

// Assets are the files of the package the page needs, with the licence,
// and their content types.
var Assets = map[string]string{
	"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
	"swagger-ui.css":       "text/css; charset=utf-8",
	"LICENSE":              "text/plain; charset=utf-8",
	"NOTICE":               "text/plain; charset=utf-8",
}

// MissingHint is what /docs answers (503) while the assets are missing.
const MissingHint = "the API reference page's assets are not built into this function: run make api-docs before faas-cli build; the document is at /openapi.yaml"

// Present reports whether assets holds every asset as a regular file.
func Present(assets fs.FS) bool {
	for a := range Assets {
		if fi, err := fs.Stat(assets, a); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// Handler serves GET /openapi.yaml (doc with its servers replaced by the
// origin the request reached, see Origin), GET /docs (the page) and the
// page's script, style sheet and licence under /docs/ from assets (the
// files of Assets at its root). Without them, every /docs path but init.js
// answers 503 (a problem, code unavailable, saying MissingHint) and
// /openapi.yaml still works. Any other path or method is a 404 or 405
// problem, as every function answers.
func Handler(doc []byte, assets fs.FS) (http.Handler, error) {
	served, err := withServer(doc, serverOrigin)
	if err != nil {
		return nil, err
	}
	present := Present(assets)
	missing := func(w http.ResponseWriter) {
		fnhttp.WriteProblem(w, fault.E(fault.Unavailable, fault.CodeUnavailable, MissingHint))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = io.WriteString(w, strings.Replace(served, serverOrigin, Origin(r), 1))
	})
	page := func(w http.ResponseWriter, r *http.Request) {
		if !present {
			missing(w)
			return
		}
		header(w, "text/html; charset=utf-8")
		_, _ = io.WriteString(w, pageHTML(prefix(r)))
	}
	mux.HandleFunc("GET /docs", page)
	mux.HandleFunc("GET /docs/{$}", page)
	mux.HandleFunc("GET /docs/init.js", func(w http.ResponseWriter, _ *http.Request) {
		header(w, "text/javascript; charset=utf-8")
		_, _ = io.WriteString(w, initJS)
	})
	for a, contentType := range Assets {
		mux.HandleFunc("GET /docs/"+a, func(w http.ResponseWriter, r *http.Request) {
			if !present {
				missing(w)
				return
			}
			header(w, contentType)
			http.ServeFileFS(w, r, assets, a)
		})
	}
	return underDocs(fnhttp.Routes(mux)), nil
}

// underDocs sets CSP on every answer h writes under /docs: the page, its
// assets, the 503 without them, and the 404 and 405 problems of
// fnhttp.Routes for a path or method the mux does not serve there. The
// answers fnserve gives before h runs (the problems of
// fnhttp.CheckRequestText, the redirect of a path that is not clean)
// carry none: they are not HTML.
func underDocs(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/docs" || strings.HasPrefix(r.URL.Path, "/docs/") {
			w.Header().Set("Content-Security-Policy", CSP)
		}
		h.ServeHTTP(w, r)
	})
}

func header(w http.ResponseWriter, contentType string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
}
