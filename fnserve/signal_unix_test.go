//go:build unix

package fnserve_test

import (
	"bufio"
	"encoding/json"
	"errors"
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
	c.signal(syscall.SIGTERM)
	c.await("draining")
	c.healthFails()
	c.signal(syscall.SIGINT)
	select {
	case err := <-c.waitErr:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("the process ended with %v, want killed by SIGINT", err)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Errorf("the process ended with %v, want killed by SIGINT", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal during the 60s drain did not end the process within 10s")
	}
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
	c.signal(syscall.SIGTERM)
	c.await("draining")
	c.signal(syscall.SIGTERM)
	select {
	case err := <-c.waitErr:
		t.Fatalf("a second SIGTERM ended the drain: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
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
	t       *testing.T
	cmd     *exec.Cmd
	addr    string
	seen    chan map[string]any
	waitErr chan error
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
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &signalChild{t: t, cmd: cmd, seen: make(chan map[string]any, 64), waitErr: make(chan error, 1)}
	exited := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	// One reader: stdout to its end (so the child never blocks writing
	// it), each JSON line to seen (never blocking: the few the test waits
	// for fit), then the exit.
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				select {
				case c.seen <- line:
				default:
				}
			}
		}
		close(c.seen)
		c.waitErr <- cmd.Wait()
		close(exited)
	}()
	c.addr, _ = c.await("function serving")["addr"].(string)
	return c
}

// await returns the child's first log line from now whose message begins
// with msg.
func (c *signalChild) await(msg string) map[string]any {
	c.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-c.seen:
			if !ok {
				c.t.Fatalf("the process ended before it logged %q", msg)
			}
			if m, _ := line["msg"].(string); len(m) >= len(msg) && m[:len(msg)] == msg {
				return line
			}
		case <-deadline:
			c.t.Fatalf("no %q line within 20s", msg)
		}
	}
}

func (c *signalChild) signal(s syscall.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(s); err != nil {
		c.t.Fatal(err)
	}
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
