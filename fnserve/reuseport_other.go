//go:build !linux

package fnserve

import (
	"errors"
	"syscall"
)

// reusePortSupported: SERVICE_ADDR relies on Linux's SO_REUSEPORT, which
// spreads new connections among the listeners; LoadConfig refuses it here.
const reusePortSupported = false

// reusePort is never reached: LoadConfig refuses SERVICE_ADDR on this system.
func reusePort(_, _ string, _ syscall.RawConn) error {
	return errors.New("SERVICE_ADDR needs SO_REUSEPORT, which this system does not have")
}
