package integration

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/shopfaas/shop/dev/contract"
)

// TestMain validates every request the suite makes to the public API (and
// the answer it gets) against api/openapi.yaml: http.DefaultClient, which
// every helper of the suite uses, goes through a contract.Recorder, and the
// run fails when anything broke the contract, or when the whole suite ran
// and the recorder checked nothing (the suite's requests no longer go
// through it).
func TestMain(m *testing.M) {
	if err := vendorDocs(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(contract.RunSuite(m, http.DefaultClient))
}
