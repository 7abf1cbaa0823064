//go:build linux

package childproc

import "golang.org/x/sys/unix"

// BootTicks is the time since the system booted in the clock ticks of
// Stat.Start (USER_HZ, 100 a second on Linux), rounded down as the kernel
// rounds a start time: a process that started before the call has a
// Start no greater than what it returns.
func BootTicks() (uint64, bool) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0, false
	}
	return uint64(ts.Nano()) / 1e7, true
}
