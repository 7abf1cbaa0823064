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

// The file Replace writes is the owner's alone (0600) whatever a temporary
// file a crash left behind was: that file's looser mode, or a symbolic link
// in its place, is not what lands at p. Until 2026-12-08 Replace opened a
// stale temporary file as it was, and p took its mode (0644 here).
func TestReplaceWritesTheOwnersFileWhateverATemporaryFileLeftBehindWas(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "v")
	if err := os.WriteFile(p+durable.TempSuffix, []byte("stale, longer than the new content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p+durable.TempSuffix, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := durable.Replace(p, []byte("new")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != 0o600 {
		t.Errorf("replaced file's mode %v, want -rw------- (a stale temporary file's mode leaked)", got)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "new" {
		t.Errorf("replaced file holds %q %v, want new", got, err)
	}

	// A symbolic link left at the temporary name: its target is not written.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p+durable.TempSuffix); err != nil {
		t.Fatal(err)
	}
	if err := durable.Replace(p, []byte("newer")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "target" {
		t.Errorf("the link's target was written: %q", got)
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced file %v %v, want a regular 0600 file", fi.Mode(), err)
	}
}
