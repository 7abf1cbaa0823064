package security

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/shopfaas/shop/dev/contract"
)

// TestMain holds every probe's exchange with the public API to
// api/openapi.yaml, as the integration suite's are: client goes through a
// contract.Recorder, so an answer whose status, headers or problem code the
// contract does not list for the operation fails the run (a refused request
// must be answered 4xx). Raw request targets sent on a connection of their
// own are not recorded. A whole run that checked nothing fails too.
func TestMain(m *testing.M) {
	c, err := contract.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "contract:", err)
		os.Exit(2)
	}
	rec := &contract.Recorder{Contract: c}
	client.Transport = rec
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
		fmt.Fprintln(os.Stderr, "FAIL: the whole suite ran and no exchange with the public API was checked against api/openapi.yaml")
		code = 1
	}
	os.Exit(code)
}

// fullRun reports whether m.Run ran every test (no -run, -skip or -list, not
// -short).
func fullRun() bool {
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return !testing.Short()
}
