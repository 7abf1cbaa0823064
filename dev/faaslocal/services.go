package faaslocal

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// services are the stable loopback ports of the multi-call binary's
// functions, the local stand-in for their Kubernetes Services
// (http://<name>.openfaas-fn:8080): every replica of function F also
// listens on F's port (SERVICE_ADDR, fnserve), the kernel spreads new
// connections among them, and every process the runtime starts finds the
// ports in FUNCTION_URLS, so that functions call each other directly
// instead of through the gateway (two HTTP legs per call). A function with
// no replica (scaled to zero, not deployed) has no listener on its port:
// a caller's connection is refused and it falls back to the gateway, which
// wakes the function. nil (Config.GatewayOnly, or a system without
// SO_REUSEPORT) means no SERVICE_ADDR and no FUNCTION_URLS.
type services struct {
	ports map[string]int // function name -> port on 127.0.0.1
	fds   []int          // the reserving sockets, released by Close
}

// addr is function name's SERVICE_ADDR, or "" when it has none.
func (s *services) addr(name string) string {
	if s == nil || s.ports[name] == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(s.ports[name])
}

// urls is FUNCTION_URLS: name=http://127.0.0.1:<port> for every function,
// comma-separated, sorted by name; "" when there are none.
func (s *services) urls() string {
	if s == nil {
		return ""
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(s.ports)) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name + "=http://" + s.addr(name))
	}
	return b.String()
}
