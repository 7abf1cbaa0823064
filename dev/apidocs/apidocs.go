// Package apidocs is the API reference of the local edge: the contract
// (api/openapi.yaml) at /openapi.yaml, its servers entry pointed at the
// origin that served it so that "Try it out" calls that same edge, and a
// Swagger UI page at /docs.
//
// Swagger UI comes from the npm package swagger-ui-dist (Apache-2.0), pinned
// to Version and checked against Integrity, vendored at build time by Vendor
// (npm pack into build/api-docs, which git ignores; make api-docs and make
// run do it). The page loads nothing from outside: its script, style sheet and
// the document all come from the edge, and every answer of the page carries
// the Content-Security-Policy CSP (default-src 'self').
package apidocs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// The vendored npm package: name, pinned version and the registry's
// integrity of its tarball (npm view swagger-ui-dist@5.35.0 dist.integrity).
const (
	Package   = "swagger-ui-dist"
	Version   = "5.35.0"
	Integrity = "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
)

// CSP is the Content-Security-Policy of every answer under /docs: only the
// edge's own origin (images may also be data: URLs, which Swagger UI's
// style sheet uses for its icons; they load nothing). The page repeats it
// in a meta tag without frame-ancestors, which a meta tag cannot carry.
const CSP = metaCSP + "; frame-ancestors 'none'"

const metaCSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"

// assets are the files of the package the page needs, with the licence.
var assets = []string{"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"}

// Dir is where Vendor puts the assets of the pinned version under the
// module root.
func Dir(root string) string {
	return filepath.Join(root, "build", "api-docs", Package+"-"+Version)
}

// Present reports whether dir holds every asset.
func Present(dir string) bool {
	for _, a := range assets {
		if fi, err := os.Stat(filepath.Join(dir, a)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// Vendor fetches the pinned package from the npm registry with npm pack,
// checks the tarball against Integrity and writes the assets into dir
// (replacing it whole, so a failed run leaves no partial directory).
func Vendor(ctx context.Context, dir string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".vendor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "npm", "pack", "--silent", Package+"@"+Version)
	cmd.Dir = tmp
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm pack %s@%s: %w: %s", Package, Version, err, strings.TrimSpace(stderr.String()))
	}
	tgz, err := os.ReadFile(filepath.Join(tmp, Package+"-"+Version+".tgz"))
	if err != nil {
		return fmt.Errorf("npm pack %s@%s: %w", Package, Version, err)
	}
	sum := sha512.Sum512(tgz)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != Integrity {
		return fmt.Errorf("%s@%s: tarball integrity %s, want %s", Package, Version, got, Integrity)
	}
	out := filepath.Join(tmp, "out")
	if err := extract(tgz, out); err != nil {
		return fmt.Errorf("%s@%s: %w", Package, Version, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(out, dir)
}

// extract writes the assets of an npm tarball (package/<name>) into dir.
func extract(tgz []byte, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, a := range assets {
		want["package/"+a] = true
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if !want[h.Name] || h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 32<<20))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimPrefix(h.Name, "package/")), b, 0o644); err != nil {
			return err
		}
		delete(want, h.Name)
	}
	if len(want) > 0 {
		return fmt.Errorf("tarball lacks %v", want)
	}
	return nil
}

// serverOrigin marks the servers entry Handler rewrites per request.
const serverOrigin = "http://api-docs.origin.invalid"

// host is what a Host header may be to be written into the document.
var host = regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// Handler serves GET /openapi.yaml (doc with its servers replaced by the
// origin the request reached), GET /docs (the page), and the page's
// script, style sheet and licence under /docs/ from dir. Without the assets
// in dir, /docs answers 503 with a page saying how to vendor them.
func Handler(doc []byte, dir string) (http.Handler, error) {
	served, err := withServer(doc, serverOrigin)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		origin := "http://127.0.0.1"
		if host.MatchString(r.Host) {
			origin = "http://" + r.Host
		}
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = io.WriteString(w, strings.Replace(served, serverOrigin, origin, 1))
	})
	page := func(w http.ResponseWriter, r *http.Request) {
		header(w, "text/html; charset=utf-8")
		if !Present(dir) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, missingPage)
			return
		}
		_, _ = io.WriteString(w, pageHTML)
	}
	mux.HandleFunc("GET /docs", page)
	mux.HandleFunc("GET /docs/{$}", page)
	mux.HandleFunc("GET /docs/init.js", func(w http.ResponseWriter, _ *http.Request) {
		header(w, "text/javascript; charset=utf-8")
		_, _ = io.WriteString(w, initJS)
	})
	types := map[string]string{"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
		"swagger-ui.css": "text/css; charset=utf-8", "LICENSE": "text/plain; charset=utf-8", "NOTICE": "text/plain; charset=utf-8"}
	for _, a := range assets {
		mux.HandleFunc("GET /docs/"+a, func(w http.ResponseWriter, r *http.Request) {
			header(w, types[a])
			http.ServeFile(w, r, filepath.Join(dir, a))
		})
	}
	return mux, nil
}

// Serves reports whether the path is one Handler answers, so the edge can
// send everything else to its routes.
func Serves(path string) bool {
	return path == "/openapi.yaml" || path == "/docs" || strings.HasPrefix(path, "/docs/")
}

func header(w http.ResponseWriter, contentType string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Security-Policy", CSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
}

// withServer returns doc (YAML) with its servers list replaced by one entry
// at url.
func withServer(doc []byte, url string) (string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return "", fmt.Errorf("openapi document: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return "", errors.New("openapi document: not a mapping")
	}
	var servers yaml.Node
	if err := servers.Encode([]map[string]string{{"url": url, "description": "this edge (the origin that served this document)"}}); err != nil {
		return "", err
	}
	m := root.Content[0]
	found := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "servers" {
			m.Content[i+1] = &servers
			found = true
		}
	}
	if !found {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "servers"}, &servers)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return "", err
	}
	return b.String(), nil
}

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="` + metaCSP + `">
<title>shop API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`

// initJS starts Swagger UI on the edge's document; validatorUrl null keeps
// it from sending the document to swagger.io's validator.
const initJS = `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.yaml",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
`

const missingPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>shop API reference: assets missing</title></head>
<body>
<h1>The API reference page is not built</h1>
<p>Its assets (the npm package ` + Package + `@` + Version + `) are vendored at build time into
<code>build/api-docs</code>, which git ignores. Run <code>make api-docs</code> (it needs npm and the npm registry)
and reload. The document itself is at <a href="/openapi.yaml">/openapi.yaml</a>.</p>
</body>
</html>
`
