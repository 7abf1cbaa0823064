package secrets

// SetSyncDir replaces the directory sync of Open until the returned
// function restores it.
func SetSyncDir(f func(dir string) error) (restore func()) {
	was := syncDir
	syncDir = f
	return func() { syncDir = was }
}
