// Package durable makes the local runtime's files survive a host crash once
// they are acknowledged: the journal of async calls and the secret store.
package durable

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
)

// TempSuffix ends the name of a file Replace is writing: readers of a
// directory skip such files (a crash can leave one behind).
const TempSuffix = ".tmp"

// Replace writes data to p atomically: to p+TempSuffix first, synced to
// disk, then renamed over p, so p holds either its old content or data,
// whole. The new name reaches the disk only once p's directory is synced
// (SyncDir), which the caller does before it acknowledges anything. A
// Replace that fails leaves no temporary file. p is the owner's alone
// (0600) whatever a temporary file a crash left behind was: that file is
// removed and a new one created, never opened as it is (its looser mode, or
// a symbolic link's target, would land at p).
func Replace(p string, data []byte) error {
	tmp := p + TempSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// SyncDir flushes dir's entries (a file created or renamed into it) to disk:
// a file's own Sync does not make its name durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirAll creates dir and any missing parent (0700), and calls syncDir
// (SyncDir but in tests) on the parent of each directory it created, the
// outermost first: until then a crash of the host could lose the new
// directory's name, and with it every file synced inside.
func MkdirAll(dir string, syncDir func(string) error) error {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, os.ErrNotExist) || d == filepath.Dir(d) {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range slices.Backward(created) {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// MkdirPrivate is MkdirAll for a directory of the runtime's own (the
// journal's, the secret store's): when it exists already and others may
// read or enter it, it is narrowed to 0700, since what it holds (secrets,
// async calls with their Authorization) is the owner's alone. A directory
// the developer chose (the state) is left as it is.
func MkdirPrivate(dir string, syncDir func(string) error) error {
	if err := MkdirAll(dir, syncDir); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}
