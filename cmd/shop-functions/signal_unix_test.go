//go:build unix

package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/proctest"
)

// The multi-call binary the local runtime runs catches signals as the
// template's fnserve.Main does (fnserve.SignalContext): the first SIGTERM
// begins the drain, a second SIGINT (an operator's second Ctrl-C) ends the
// process at once. Until 2026-12-07 its signal.NotifyContext kept both
// caught until main returned, so a second signal did nothing for the whole
// drain.
func TestASecondInterruptEndsAFunctionProcessAtOnce(t *testing.T) {
	p := startFunctionProcess(t, "TestASecondInterruptEndsAFunctionProcessAtOnce")
	if p == nil {
		return
	}
	p.Signal(syscall.SIGTERM)
	p.Await(`"msg":"draining`)
	p.Signal(syscall.SIGINT)
	p.EndsBy(syscall.SIGINT, 10*time.Second, "a SIGINT during the 60s drain")
}

// A SIGTERM repeated at once (faasd signals every process of a container,
// and of-watchdog forwards its own) does not cut the drain: the function
// still answers.
func TestARepeatedTerminateDoesNotCutAFunctionProcessesDrain(t *testing.T) {
	p := startFunctionProcess(t, "TestARepeatedTerminateDoesNotCutAFunctionProcessesDrain")
	if p == nil {
		return
	}
	p.Signal(syscall.SIGTERM)
	p.Await(`"msg":"draining`)
	p.Signal(syscall.SIGTERM)
	p.StaysUp(500*time.Millisecond, "a second SIGTERM")
	res, err := http.Get("http://" + p.addr + "/openapi.yaml")
	if err != nil {
		t.Fatalf("a call after the second SIGTERM: %v, want it served", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("a call after the second SIGTERM: %d, want 200", res.StatusCode)
	}
}

// functionProcess is this test binary run again as `shop-functions
// api-docs` (a function that needs no service), with a 60 s drain.
type functionProcess struct {
	*proctest.Signalled
	addr string
}

// startFunctionProcess starts the process for the test named test, or, in
// that process, runs main until it returns and answers nil.
func startFunctionProcess(t *testing.T, test string) *functionProcess {
	t.Helper()
	if os.Getenv("SHOP_FUNCTIONS_SIGNAL_CHILD") == "1" {
		os.Args = []string{os.Args[0], "api-docs"}
		main()
		return nil
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), "SHOP_FUNCTIONS_SIGNAL_CHILD=1", "BIND_HOST=127.0.0.1", "PORT=0",
		"healthcheck_interval=60s", "upstream_url=", "SERVICE_ADDR=", "PPROF_CPU_DIR=", "LOG_LEVEL=info",
		"OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=")
	p := &functionProcess{Signalled: proctest.StartSignalled(t, cmd)}
	var serving struct{ Addr string }
	if err := json.Unmarshal([]byte(p.Await(`"msg":"function serving`)), &serving); err != nil || serving.Addr == "" {
		t.Fatalf("the function serving line: %v, no addr", err)
	}
	p.addr = serving.Addr
	return p
}
