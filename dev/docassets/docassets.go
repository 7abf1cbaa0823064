// Package docassets vendors the API reference page's assets at build time:
// the npm package of internal/apidocs (swagger-ui-dist, pinned to
// apidocs.Version and checked against apidocs.Integrity), fetched with npm
// pack into functions/api-docs/assets/<package>-<version>, which git
// ignores and the api-docs function embeds (make api-docs, make run and the
// browser test do it). The page itself is internal/apidocs.
package docassets

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
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/shopfaas/shop/internal/apidocs"
)

// The pinned package (internal/apidocs holds the pins).
const (
	Package = apidocs.Package
	Version = apidocs.Version
)

// Assets is where Vendor puts the assets under the module root: the
// api-docs function's assets folder, which its go:embed reads (and
// faas-cli build copies into the image's build context with the handler).
func Assets(root string) string {
	return filepath.Join(root, "functions", "api-docs", "assets")
}

// Dir is the folder of the pinned version's assets under the module root.
func Dir(root string) string {
	return filepath.Join(Assets(root), apidocs.Dir)
}

// Present reports whether dir holds every asset.
func Present(dir string) bool { return apidocs.Present(os.DirFS(dir)) }

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
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != apidocs.Integrity {
		return fmt.Errorf("%s@%s: tarball integrity %s, want %s", Package, Version, got, apidocs.Integrity)
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
	for a := range apidocs.Assets {
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
