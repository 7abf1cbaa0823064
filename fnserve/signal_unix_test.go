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
// requests still served); a second one, an operator's second Ctrl-C or a
// supervisor that will not wait, ends the process at once, as it ends most
// Go servers: Main stops catching the signal once it has begun the drain.
// Until 2026-12-07 the signal stayed caught, and a second one did nothing
// during a drain of healthcheck_interval (the write timeout by default).
func TestASecondSignalEndsTheProcessAtOnce(t *testing.T) {
	if os.Getenv("FNSERVE_SIGNAL_CHILD") == "1" {
		fnserve.Main(func(*config.Reader, *slog.Logger) (http.Handler, error) {
			return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), nil
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestASecondSignalEndsTheProcessAtOnce$")
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
	seen := make(chan map[string]any, 64)
	waitErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				select {
				case seen <- line:
				default:
				}
			}
		}
		close(seen)
		waitErr <- cmd.Wait()
		close(exited)
	}()
	await := func(msg string) map[string]any {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case line, ok := <-seen:
				if !ok {
					t.Fatalf("the process ended before it logged %q", msg)
				}
				if m, _ := line["msg"].(string); len(m) >= len(msg) && m[:len(msg)] == msg {
					return line
				}
			case <-deadline:
				t.Fatalf("no %q line within 20s", msg)
			}
		}
	}
	addr, _ := await("function serving")["addr"].(string)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	await("draining")
	// The first signal's drain is graceful: the health check fails, the
	// function still answers.
	res, err := http.Get("http://" + addr + "/_/health")
	if err != nil {
		t.Fatalf("the health check during the drain: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("the health check during the drain: %d, want 503", res.StatusCode)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waitErr:
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
