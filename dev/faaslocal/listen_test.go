package faaslocal_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/shopfaas/shop/dev/faaslocal"
	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
)

// A gateway or edge address taken after cmd/faas-local's early check (a
// port another program took during the build) stops Start with an error
// that names the listener and the address, as the early check does, and
// that callers can tell apart (ListenError). Until 2026-12-08 it was a bare
// "gateway listen: listen tcp …: address already in use".
func TestATakenListenAddressIsNamed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, tc := range []struct{ listener, gateway, edge, kong string }{
		{"gateway", taken, "127.0.0.1:0", ""},
		{"edge", "127.0.0.1:0", taken, "gateway/kong.yml"},
	} {
		t.Run(tc.listener, func(t *testing.T) {
			rt, err := faaslocal.Start(context.Background(), faaslocal.Config{Root: runtimetest.Root(t),
				StateDir: runtimetest.StateDir(t), GatewayAddr: tc.gateway, EdgeAddr: tc.edge, KongFile: tc.kong, Quiet: true})
			if err == nil {
				_ = rt.Close()
				t.Fatalf("Start with the %s's address %s taken: nil error", tc.listener, taken)
			}
			if want := "the " + tc.listener + " cannot listen on " + taken; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			var le *faaslocal.ListenError
			if !errors.As(err, &le) || le.Listener != tc.listener || le.Addr != taken {
				t.Errorf("error %q is not the %s's ListenError for %s (%+v)", err, tc.listener, taken, le)
			}
		})
	}
}
