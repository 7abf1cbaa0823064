package durable_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shopfaas/shop/dev/faaslocal/durable"
)

// Replace puts the new content in place whole and leaves no temporary file,
// whether it succeeds or fails (here the rename, over a directory).
func TestReplaceLeavesTheNewContentAndNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "v")
	for _, data := range []string{"old value", "new"} {
		if err := durable.Replace(p, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != data {
			t.Fatalf("after Replace(%q): %q %v", data, got, err)
		}
	}
	blocked := filepath.Join(dir, "d")
	if err := os.Mkdir(blocked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blocked, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := durable.Replace(blocked, []byte("x")); err == nil {
		t.Fatal("Replace over a non-empty directory succeeded")
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*"+durable.TempSuffix)); len(names) != 0 {
		t.Fatalf("temporary files left: %v", names)
	}
}
