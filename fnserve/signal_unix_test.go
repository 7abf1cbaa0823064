//go:build unix

package fnserve_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/proctest"
)

// The first SIGTERM or SIGINT begins Main's graceful drain (health 503,
// requests still served); a second SIGINT, an operator's second Ctrl-C, ends
// the process at once, as it ends most Go servers. Until 2026-12-07 a second
// one did nothing during a drain of healthcheck_interval (the write timeout
// by default).
func TestASecondInterruptEndsTheProcessAtOnce(t *testing.T) {
	c := startSignalChild(t, "TestASecondInterruptEndsTheProcessAtOnce")
	if c == nil {
		return
	}
	c.Signal(syscall.SIGTERM)
	c.Await(`"msg":"draining`)
	c.healthFails()
	c.Signal(syscall.SIGINT)
	c.EndsBy(syscall.SIGINT, 10*time.Second, "a second signal during the 60s drain")
}

// A SIGTERM repeated at once does not cut the drain: faasd stops a
// container by signalling every process in it (containerd's kill with
// WithKillAll) and of-watchdog forwards its own SIGTERM to the function, so
// the function gets two within microseconds. SIGTERM stays caught for the
// whole drain; only SIGINT ends it early.
func TestARepeatedTerminateDoesNotCutTheDrain(t *testing.T) {
	c := startSignalChild(t, "TestARepeatedTerminateDoesNotCutTheDrain")
	if c == nil {
		return
	}
	c.Signal(syscall.SIGTERM)
	c.Await(`"msg":"draining`)
	c.Signal(syscall.SIGTERM)
	c.StaysUp(500*time.Millisecond, "a second SIGTERM")
	c.healthFails()
	res, err := http.Get("http://" + c.addr + "/work")
	if err != nil {
		t.Fatalf("a call after the second SIGTERM: %v, want it served", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("a call after the second SIGTERM: %d, want 200", res.StatusCode)
	}
}

// signalChild is this test binary run again as a function served by
// fnserve.Main, with a 60 s drain.
type signalChild struct {
	*proctest.Signalled
	t    *testing.T
	addr string
}

// startSignalChild starts the child for the test named test, or, in the
// child, serves until Main returns and answers nil.
func startSignalChild(t *testing.T, test string) *signalChild {
	t.Helper()
	if os.Getenv("FNSERVE_SIGNAL_CHILD") == "1" {
		fnserve.Main(func(*config.Reader, *slog.Logger) (http.Handler, error) {
			return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), nil
		})
		return nil
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), "FNSERVE_SIGNAL_CHILD=1", "OPENFAAS_NAME=signals", "BIND_HOST=127.0.0.1",
		"PORT=0", "healthcheck_interval=60s", "upstream_url=", "SERVICE_ADDR=", "PPROF_CPU_DIR=",
		"LOG_LEVEL=info", "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=")
	c := &signalChild{Signalled: proctest.StartSignalled(t, cmd), t: t}
	var serving struct{ Addr string }
	if err := json.Unmarshal([]byte(c.Await(`"msg":"function serving`)), &serving); err != nil || serving.Addr == "" {
		t.Fatalf("the function serving line: %v, no addr", err)
	}
	c.addr = serving.Addr
	return c
}

// healthFails checks the drain is graceful: the health check fails while
// the function still answers.
func (c *signalChild) healthFails() {
	c.t.Helper()
	res, err := http.Get("http://" + c.addr + "/_/health")
	if err != nil {
		c.t.Fatalf("the health check during the drain: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		c.t.Errorf("the health check during the drain: %d, want 503", res.StatusCode)
	}
}

// After stop, SIGTERM stays caught until the process exits: Main's deferred
// stop runs after Run returns, and a second SIGTERM landing then (faasd sends
// two at once) must not end the process with a signal's status instead of
// its own. The child stops, signals itself, and exits 0 if still alive.
func TestATerminateAfterStopDoesNotEndTheProcess(t *testing.T) {
	if os.Getenv("FNSERVE_STOP_CHILD") == "1" {
		_, stop := fnserve.SignalContext()
		stop()
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(200 * time.Millisecond)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestATerminateAfterStopDoesNotEndTheProcess$")
	cmd.Env = append(os.Environ(), "FNSERVE_STOP_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a SIGTERM after stop: %v, want the process to exit on its own (0)\n%s", err, out)
	}
}
