package faaslocal

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// LockState, which creates the state directory before the secret store and
// the journal make theirs inside, syncs the parent of each directory it
// creates: they sync only the state itself, so until 2026-12-08 a crash of
// the host could lose the new state's name, and every secret and call synced
// inside with it. An existing state syncs nothing and keeps its mode: the
// developer chose it.
func TestLockStateSyncsTheDirectoriesItCreates(t *testing.T) {
	root := t.TempDir()
	var synced []string
	was := syncStateDir
	syncStateDir = func(d string) error { synced = append(synced, d); return nil }
	defer func() { syncStateDir = was }()
	state := filepath.Join(root, "a", "state")
	l, err := LockState(state)
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	if want := []string{root, filepath.Join(root, "a")}; !slices.Equal(synced, want) {
		t.Errorf("directory syncs %q creating the state, want %q", synced, want)
	}
	synced = nil
	if err := os.Chmod(state, 0o750); err != nil {
		t.Fatal(err)
	}
	if l, err = LockState(state); err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	if len(synced) != 0 {
		t.Errorf("directory syncs %q locking an existing state, want none", synced)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("the existing state's mode became %v (%v), want it left at 0750", fi.Mode().Perm(), err)
	}
}
