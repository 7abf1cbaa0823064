package docassets

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/apidocs"
)

// tarball is an npm-style .tgz holding files (path → content).
func tarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Only the page's assets leave the tarball, by their base name; a tarball
// without one of them is refused.
func TestExtractWritesOnlyTheAssets(t *testing.T) {
	files := map[string]string{"package/package.json": "{}", "package/index.html": "<html>", "../escape": "x"}
	for a := range apidocs.Assets {
		files["package/"+a] = a
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := extract(tarball(t, files), dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(apidocs.Assets) || !Present(dir) {
		t.Errorf("extracted %v, want exactly %v", entries, apidocs.Assets)
	}

	delete(files, "package/swagger-ui.css")
	if err := extract(tarball(t, files), filepath.Join(t.TempDir(), "out")); err == nil || !strings.Contains(err.Error(), "swagger-ui.css") {
		t.Errorf("a tarball without swagger-ui.css: %v, want it named", err)
	}
}

// A tarball whose sha512 is not the pinned Integrity is refused and leaves
// the assets already vendored as they were. npm is a stand-in on PATH that
// writes such a tarball where npm pack would.
func TestVendorRefusesAnotherTarball(t *testing.T) {
	bin := t.TempDir()
	files := map[string]string{}
	for a := range apidocs.Assets {
		files["package/"+a] = "tampered " + a
	}
	tgz := filepath.Join(bin, "fake.tgz")
	if err := os.WriteFile(tgz, tarball(t, files), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\ncp " + tgz + " ./" + Package + "-" + Version + ".tgz\n"
	if err := os.WriteFile(filepath.Join(bin, "npm"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	dir := filepath.Join(t.TempDir(), "assets")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "swagger-ui.css"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Vendor(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "integrity") {
		t.Fatalf("Vendor of a tampered tarball: %v, want an integrity error", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "swagger-ui.css")); string(b) != "kept" {
		t.Errorf("the vendored assets changed: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".vendor-*")); len(left) > 0 {
		t.Errorf("Vendor left %v behind", left)
	}
}
