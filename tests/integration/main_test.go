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
// run fails when anything broke the contract.
func TestMain(m *testing.M) {
	if err := vendorDocs(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	c, err := contract.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "contract:", err)
		os.Exit(2)
	}
	rec := &contract.Recorder{Contract: c, Next: http.DefaultTransport}
	http.DefaultClient.Transport = rec
	code := m.Run()
	if v := rec.Violations(); len(v) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d of %d exchanges with the public API break api/openapi.yaml:\n", len(v), rec.Checked())
		for _, s := range v {
			fmt.Fprintln(os.Stderr, "  "+s)
		}
		code = 1
	} else if rec.Checked() > 0 {
		fmt.Printf("contract: %d exchanges with the public API checked against api/openapi.yaml\n", rec.Checked())
	}
	os.Exit(code)
}
