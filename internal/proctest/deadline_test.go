package proctest_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/proctest"
)

// A wait bounded by the test's deadline ends margin before go test's
// -timeout (at least a second), and one that ends sooner keeps its own
// length; without a deadline (-timeout 0) nothing is bounded.
func TestWaitsBoundedByTheDeadlineEndBeforeIt(t *testing.T) {
	const margin = time.Minute
	deadline, ok := t.Deadline()
	// What -timeout leaves less margin, at least a second.
	most := max(time.Until(deadline)-margin, time.Second)
	long := proctest.BeforeDeadline(t, 1000*time.Hour, margin)
	least := max(time.Until(deadline)-margin, time.Second)
	end, hasEnd := proctest.DeadlineContext(t, margin).Deadline()
	if !ok {
		if long != 1000*time.Hour || hasEnd {
			t.Errorf("without a deadline: a wait of 1000 h bounded to %s, a context ending at %v (%v)", long, end, hasEnd)
		}
		return
	}
	if long > most || long < least {
		t.Errorf("a wait of 1000 h bounded to %s, want between %s and %s (what -timeout leaves less %s)", long, least, most, margin)
	}
	if !hasEnd || !end.Equal(deadline.Add(-margin)) {
		t.Errorf("the context ends at %v (%v), want %v, %s before the deadline", end, hasEnd, deadline.Add(-margin), margin)
	}
	if short := proctest.BeforeDeadline(t, time.Second, margin); short != time.Second {
		t.Errorf("a wait of 1 s bounded to %s", short)
	}
}

// closeAtEndEnv, set, makes TestHelperCloseAtEnd run: "fail" fails the
// test after CloseAtEnd, "pass" does not.
const closeAtEndEnv = "PROCTEST_CLOSE_AT_END"

// server records how CloseAtEnd ended it, on standard output.
type server struct{}

func (server) Kill() error  { fmt.Println("server: kill"); return nil }
func (server) Close() error { fmt.Println("server: close"); return nil }

// TestHelperCloseAtEnd is not a test: run again by
// TestCloseAtEndKillsWhenTheTestFailedOrTimeIsShort with closeAtEndEnv set.
func TestHelperCloseAtEnd(t *testing.T) {
	mode := os.Getenv(closeAtEndEnv)
	if mode == "" {
		return
	}
	proctest.CloseAtEnd(t, server{})
	if mode == "fail" {
		t.Fail()
	}
}

// A private server is killed before its Close when its test failed or
// when a clean stop could run past -timeout, and only closed otherwise.
func TestCloseAtEndKillsWhenTheTestFailedOrTimeIsShort(t *testing.T) {
	for _, c := range []struct {
		mode, timeout, want string
	}{
		{"pass", "10m", "server: close\n"},
		{"fail", "10m", "server: kill\nserver: close\n"},
		{"pass", "30s", "server: kill\nserver: close\n"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCloseAtEnd$", "-test.timeout="+c.timeout)
		cmd.Env = append(os.Environ(), closeAtEndEnv+"="+c.mode)
		out, _ := cmd.Output()
		var got strings.Builder
		for _, line := range strings.SplitAfter(string(out), "\n") {
			if strings.HasPrefix(line, "server: ") {
				got.WriteString(line)
			}
		}
		if got.String() != c.want {
			t.Errorf("a test that ends with %q under -timeout %s: %q, want %q", c.mode, c.timeout, got.String(), c.want)
		}
	}
}
