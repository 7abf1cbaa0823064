//go:build linux

package faaslocal

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/sys/unix"
)

// reserveServices reserves a loopback port for each named function (see
// services): a TCP socket with SO_REUSEPORT bound to 127.0.0.1:0 that never
// listens. It holds the port for the runtime's lifetime, lets every replica
// of the function listen on it too (fnserve's SERVICE_ADDR), and takes no
// connection itself: only listening sockets do.
func reserveServices(names map[string]bool) (*services, error) {
	s := &services{ports: map[string]int{}}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		fd, port, err := reservePort()
		if err != nil {
			return nil, errors.Join(fmt.Errorf("reserve a port for %s: %w", name, err), s.Close())
		}
		s.fds = append(s.fds, fd)
		s.ports[name] = port
	}
	return s, nil
}

func reservePort() (fd, port int, err error) {
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	fail := func(err error) (int, int, error) {
		_ = unix.Close(fd)
		return -1, 0, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail(fmt.Errorf("SO_REUSEPORT: %w", err))
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail(fmt.Errorf("bind: %w", err))
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail(fmt.Errorf("getsockname: %w", err))
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return fail(fmt.Errorf("getsockname: %T", sa))
	}
	return fd, in4.Port, nil
}

// Close releases every reserved port.
func (s *services) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, fd := range s.fds {
		errs = append(errs, unix.Close(fd))
	}
	s.fds = nil
	return errors.Join(errs...)
}
