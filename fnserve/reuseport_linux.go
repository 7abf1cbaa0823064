//go:build linux

package fnserve

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported: SO_REUSEPORT spreads new connections among every
// socket listening on the same address (Linux 3.9 and later).
const reusePortSupported = true

// reusePort sets SO_REUSEPORT on a socket before it is bound, so that every
// replica of a function can listen on the same SERVICE_ADDR.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
