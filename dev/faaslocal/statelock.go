package faaslocal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/shopfaas/shop/dev/faaslocal/durable"
)

// stateLockFile is the file in the state directory whose flock a runtime
// holds: two runtimes on one state would replay each other's async calls,
// remove each other's journal entries and function secrets.
const stateLockFile = "faas-local.lock"

// syncStateDir flushes a directory's entries to disk (a variable for the
// test that sees LockState sync the directories it creates).
var syncStateDir = durable.SyncDir

// ErrStateInUse is LockState's answer when another process holds the state
// directory.
var ErrStateInUse = errors.New("state directory in use")

// StateLock is the exclusive hold of a state directory (LockState).
type StateLock struct {
	dir string
	f   *os.File
}

// LockState creates dir when missing (0700, its parent synced) and takes
// its exclusive lock, an flock on a file in it that the kernel releases when
// this process ends, however it ends. Another process holding it is
// ErrStateInUse, with that process's id when it wrote one.
func LockState(dir string) (*StateLock, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// The journal and the secret store sync the state once they create
	// their folders in it; the state's own name is synced here.
	if err := durable.MkdirAll(dir, syncStateDir); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	p := filepath.Join(dir, stateLockFile)
	// Opened without O_TRUNC: the holder's process id stays readable.
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(p); rerr == nil && strings.TrimSpace(string(b)) != "" {
				holder = "process " + strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("%w: %s holds %s (another faas-local or test runtime); stop it, or give this one a state of its own (-state)",
				ErrStateInUse, holder, p)
		}
		return nil, fmt.Errorf("state directory: lock %s: %w", p, err)
	}
	// The holder's id, for the message above; the lock works without it.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &StateLock{dir: dir, f: f}, nil
}

// Dir is the locked state directory, absolute.
func (l *StateLock) Dir() string { return l.dir }

// Close releases the lock; closing a nil lock does nothing.
func (l *StateLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
