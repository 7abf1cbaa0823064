package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/dev/bundlegen"
	"github.com/shopfaas/shop/dev/stackfile"
)

// The committed generated files (the bundled stack, its Kong config, the
// bundle packages and the multi-call registry) are what their sources
// generate: run `go run ./cmd/generate` (make generate) after changing
// internal/routes, stack.yml or gateway/kong.yml.
func TestCommittedFilesAreUpToDate(t *testing.T) {
	if err := run([]string{"-root", "../..", "-check"}, new(strings.Builder)); err != nil {
		t.Fatal(err)
	}
}

// copyInputs copies the generator's inputs into a fresh root.
func copyInputs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{bundlegen.StackFile, bundlegen.KongFile, bundlegen.PrometheusFile} {
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
	return root
}

// -check fails on a missing, hand-edited or orphaned file and passes once
// generate has written (and removed) them.
func TestCheckDetectsStaleFiles(t *testing.T) {
	root := copyInputs(t)
	var out strings.Builder
	err := run([]string{"-root", root, "-check"}, &out)
	for _, want := range []string{bundlegen.StackCEFile, bundlegen.KongCEFile, bundlegen.PrometheusCEFile, stackfile.RegistryPath, "bundles/cart/handler.go"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check on a tree without generated files: err %v, want %s reported stale", err, want)
		}
	}
	if err := run([]string{"-root", root}, &out); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-root", root, "-check"}, &out); err != nil {
		t.Fatalf("check after writing: %v", err)
	}
	// A hand edit of a generated file is caught, and generate undoes it.
	kce := filepath.Join(root, bundlegen.KongCEFile)
	b, err := os.ReadFile(kce)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kce, []byte(strings.Replace(string(b), "/function/users", "/function/get-me", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-root", root, "-check"}, &out); err == nil || !strings.Contains(err.Error(), bundlegen.KongCEFile) {
		t.Fatalf("check after a hand edit: err %v, want %s stale", err, bundlegen.KongCEFile)
	}
	// So is a file in bundles/ the generator does not produce.
	orphan := filepath.Join(root, "bundles", "gone", "handler.go")
	if err := os.MkdirAll(filepath.Dir(orphan), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte("package function\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-root", root, "-check"}, &out); err == nil || !strings.Contains(err.Error(), "bundles/gone/handler.go") {
		t.Fatalf("check with an orphan: err %v, want bundles/gone/handler.go stale", err)
	}
	if err := run([]string{"-root", root}, &out); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-root", root, "-check"}, &out); err != nil {
		t.Fatalf("check after regenerating: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(orphan)); !os.IsNotExist(err) {
		t.Errorf("the orphan's folder is still there: %v", err)
	}
}
