package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/shopfaas/shop/dev/faaslocal"
)

// An address taken after the early check, during the build, is told as the
// early check tells it: the listener, the address, and the variable and
// flag that move it; any other error of Start is left as it is.
func TestAnAddressTakenDuringTheBuildNamesItsSetting(t *testing.T) {
	o := options{GatewayAddr: "127.0.0.1:8080", EdgeAddr: "127.0.0.1:8000", KongFile: "gateway/kong.yml"}
	start := fmt.Errorf("start: %w", &faaslocal.ListenError{Listener: "edge", Addr: o.EdgeAddr, Err: syscall.EADDRINUSE})
	err := explainListen(o, start)
	for _, want := range []string{"the edge cannot listen on 127.0.0.1:8000", "FAAS_LOCAL_EDGE_ADDR", "-edge", "another faas-local"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %q does not wrap the listen error", err)
	}
	other := errors.New("deploy get-me: refused")
	if got := explainListen(o, other); got != other {
		t.Errorf("another error became %q", got)
	}
}
