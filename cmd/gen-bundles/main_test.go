package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/dev/bundlegen"
)

// The committed bundled stack (stack.ce.yml, gateway/kong.ce.yml and
// functions/<service>/) is what internal/routes, stack.yml and
// gateway/kong.yml generate: run `go run ./cmd/gen-bundles` after changing them.
func TestCommittedFilesAreUpToDate(t *testing.T) {
	files, err := bundlegen.Files("../..")
	if err != nil {
		t.Fatal(err)
	}
	if stale := Stale("../..", files); len(stale) > 0 {
		t.Fatalf("stale generated files (run `go run ./cmd/gen-bundles`): %v", stale)
	}
}

// -check fails on a stale file and passes once the files are written.
func TestCheckDetectsStaleFiles(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{bundlegen.StackFile, bundlegen.KongFile} {
		b, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := run([]string{"-root", root, "-check"}, &out); err == nil || !strings.Contains(err.Error(), "stack.ce.yml") {
		t.Fatalf("check on an empty tree: err %v, want stack.ce.yml reported stale", err)
	}
	if err := run([]string{"-root", root}, &out); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-root", root, "-check"}, &out); err != nil {
		t.Fatalf("check after writing: %v", err)
	}
	// Drift: a hand edit of the generated Kong config is caught.
	kce := filepath.Join(root, bundlegen.KongCEFile)
	b, _ := os.ReadFile(kce)
	if err := os.WriteFile(kce, []byte(strings.Replace(string(b), "/function/users", "/function/get-me", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-root", root, "-check"}, &out); err == nil || !strings.Contains(err.Error(), "kong.ce.yml") {
		t.Fatalf("check after a hand edit: err %v, want kong.ce.yml stale", err)
	}
}
