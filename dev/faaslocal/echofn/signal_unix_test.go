//go:build unix

package main

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/proctest"
)

// echofn catches signals as fnserve.Main does (fnserve.SignalContext), in
// its own mode too: the first SIGTERM begins its stop (here a 60 s
// ECHOFN_TERM_DELAY, still serving), a second SIGINT ends it at once.
// Until 2026-12-07 its signal.NotifyContext kept both caught until main
// returned, so a second signal did nothing for the whole delay.
func TestASecondInterruptEndsEchofnAtOnce(t *testing.T) {
	p := startEchofn(t, "TestASecondInterruptEndsEchofnAtOnce")
	if p == nil {
		return
	}
	p.Signal(syscall.SIGTERM)
	p.Await("echofn: SIGTERM, serving")
	p.Signal(syscall.SIGINT)
	p.EndsBy(syscall.SIGINT, 10*time.Second, "a SIGINT during the 60s delay")
}

// A SIGTERM repeated at once does not cut echofn's delay: it still answers.
func TestARepeatedTerminateDoesNotCutEchofnsDelay(t *testing.T) {
	p := startEchofn(t, "TestARepeatedTerminateDoesNotCutEchofnsDelay")
	if p == nil {
		return
	}
	p.Signal(syscall.SIGTERM)
	p.Await("echofn: SIGTERM, serving")
	p.Signal(syscall.SIGTERM)
	p.StaysUp(500*time.Millisecond, "a second SIGTERM")
	res, err := http.Get("http://" + p.addr + "/after")
	if err != nil {
		t.Fatalf("a call after the second SIGTERM: %v, want it served", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("a call after the second SIGTERM: %d, want 200", res.StatusCode)
	}
}

// echofnProcess is this test binary run again as echofn in its own mode
// (no fnserve), serving 60 s more after SIGTERM.
type echofnProcess struct {
	*proctest.Signalled
	addr string
}

// startEchofn starts the process for the test named test, or, in that
// process, runs main until it returns and answers nil.
func startEchofn(t *testing.T, test string) *echofnProcess {
	t.Helper()
	if os.Getenv("ECHOFN_SIGNAL_CHILD") == "1" {
		os.Args = os.Args[:1]
		main()
		return nil
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), "ECHOFN_SIGNAL_CHILD=1", "OPENFAAS_NAME=echo", "BIND_HOST=127.0.0.1", "PORT=0",
		"ECHOFN_FNSERVE=", "ECHOFN_TERM_DELAY=60s", "ECHOFN_TERM_PROBE=")
	p := &echofnProcess{Signalled: proctest.StartSignalled(t, cmd)}
	const listening = "echofn listening on "
	line := p.Await(listening)
	p.addr = line[strings.Index(line, listening)+len(listening):]
	return p
}
