package main

import (
	"errors"
	"fmt"
	"net"
)

// checkListen binds each listen address the runtime will take (the
// gateway's, and the edge's unless the edge is off) and frees it at once,
// so that a port already taken (most often by another `make run`, or a
// `docker compose up` stack publishing 8080/8000) stops the run before
// minutes of building, naming the setting to change. Every address taken is
// named. The runtime binds them again once the build is done; a port taken
// in between still fails there.
func checkListen(o options) error {
	type listener struct{ name, addr, flag, variable string }
	ls := []listener{{"gateway", o.GatewayAddr, "-gateway", "FAAS_LOCAL_GATEWAY_ADDR"}}
	if o.KongFile != "" {
		ls = append(ls, listener{"edge", o.EdgeAddr, "-edge", "FAAS_LOCAL_EDGE_ADDR"})
	}
	var errs []error
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("the %s cannot listen on %s (%w): another faas-local (make run) or a docker compose "+
				"stack may be running; stop it, or pick a free address with %s or %s", l.name, l.addr, err, l.variable, l.flag))
			continue
		}
		_ = ln.Close()
	}
	return errors.Join(errs...)
}
