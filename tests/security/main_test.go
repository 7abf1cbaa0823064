package security

import (
	"os"
	"testing"

	"github.com/shopfaas/shop/dev/contract"
)

// TestMain holds every probe's exchange with the public API to
// api/openapi.yaml, as the integration suite's are: client goes through a
// contract.Recorder, so an answer whose status, headers or problem code the
// contract does not list for the operation fails the run (a refused request
// must be answered 4xx). Raw request targets sent on a connection of their
// own, and the gateway's /function/… URLs, are not recorded. A whole run that
// checked nothing fails too.
func TestMain(m *testing.M) {
	os.Exit(contract.RunSuite(m, client))
}
