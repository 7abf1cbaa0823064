package main

import (
	"errors"
	"fmt"
	"net"

	"github.com/shopfaas/shop/dev/faaslocal"
)

// listener is one listen address the runtime takes, with the settings
// that move it.
type listener struct{ name, addr, flag, variable string }

// listeners are the listen addresses the runtime will take: the gateway's,
// and the edge's unless the edge is off.
func listeners(o options) []listener {
	ls := []listener{{"gateway", o.GatewayAddr, "-gateway", "FAAS_LOCAL_GATEWAY_ADDR"}}
	if o.KongFile != "" {
		ls = append(ls, listener{"edge", o.EdgeAddr, "-edge", "FAAS_LOCAL_EDGE_ADDR"})
	}
	return ls
}

// taken is the error of l's address taken: what may hold it and the
// settings that move it.
func (l listener) taken(err error) error {
	return fmt.Errorf("the %s cannot listen on %s (%w): another faas-local (make run) or a docker compose "+
		"stack may be running; stop it, or pick a free address with %s or %s", l.name, l.addr, err, l.variable, l.flag)
}

// checkListen binds each listen address the runtime will take (listeners)
// and frees it at once, so that a port already taken (most often by another
// `make run`, or a `docker compose up` stack publishing 8080/8000) stops
// the run before minutes of building, naming the setting to change. Every
// address taken is named. The runtime binds them again once the build is
// done; a port taken in between fails there, named the same way
// (explainListen).
func checkListen(o options) error {
	var errs []error
	for _, l := range listeners(o) {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			errs = append(errs, l.taken(err))
			continue
		}
		_ = ln.Close()
	}
	return errors.Join(errs...)
}

// explainListen is faaslocal.Start's error, a faaslocal.ListenError (an
// address taken after checkListen, during the build) told as checkListen
// tells it; any other error as it is.
func explainListen(o options, err error) error {
	var le *faaslocal.ListenError
	if !errors.As(err, &le) {
		return err
	}
	for _, l := range listeners(o) {
		if l.name == le.Listener {
			return l.taken(le.Err)
		}
	}
	return err
}
