package integration

import (
	"flag"
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
	} else if fullRun() {
		fmt.Fprintln(os.Stderr, "FAIL: the whole suite ran and no exchange with the public API was checked against api/openapi.yaml "+
			"(do the tests still call it through http.DefaultClient, whose transport is the contract.Recorder?)")
		code = 1
	}
	os.Exit(code)
}

// fullRun reports whether m.Run ran every test: no -run, -skip or -list, and
// not -short (which skips every test that starts the local runtime). A run
// of some tests may check no exchange: go test -run X ./tests/integration.
func fullRun() bool {
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return !testing.Short()
}
