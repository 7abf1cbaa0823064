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
// must be answered 4xx). The calls of a public function through the
// gateway's /function/<name>/<path> (the functions the edge limits per
// client IP, and every token and admin probe sent "straight to the
// function") are held to the contract as that function's answer on <path>
// (contract.Recorder.FunctionCalls). Raw request targets sent on a
// connection of their own, and the gateway's other URLs, are not recorded.
// A whole run that checked nothing fails too.
func TestMain(m *testing.M) {
	os.Exit(contract.RunSuite(m, client, func(r *contract.Recorder) { r.FunctionCalls = true }))
}
