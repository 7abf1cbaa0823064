// Package durable makes the local runtime's files survive a host crash once
// they are acknowledged: the journal of async calls and the secret store.
package durable

import "os"

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
