//go:build !linux

package childproc

// BootTicks is unknown here: there is no /proc whose start times it would
// compare with.
func BootTicks() (uint64, bool) { return 0, false }
