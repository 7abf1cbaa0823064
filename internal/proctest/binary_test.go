package proctest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// outcome records how a call of Binary ended.
type outcome struct {
	testing.TB
	failed, skipped string
}

func (o *outcome) Helper() {}

func (o *outcome) Fatalf(format string, args ...any) {
	o.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (o *outcome) Skipf(format string, args ...any) {
	o.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// binary calls Binary with a recording TB, on a goroutine of its own, as
// the testing package runs a test (Fatalf and Skipf end it).
func binary(install string, names ...string) (path string, o *outcome) {
	o = &outcome{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path = Binary(o, install, names...)
	}()
	<-done
	return path, o
}

// TestAMissingToolFailsTheTest: a test whose tool is not installed fails,
// naming what installs it, rather than being skipped and looking green.
func TestAMissingToolFailsTheTest(t *testing.T) {
	if testing.Short() {
		t.Skip("checks what happens without -short")
	}
	_, o := binary("Debian: apt-get install no-such-tool", "no-such-tool-1", "/no/such/tool-2")
	if o.skipped != "" || !strings.Contains(o.failed, "apt-get install no-such-tool") || !strings.Contains(o.failed, "-short") {
		t.Errorf("a missing tool: failed %q, skipped %q; want a failure naming the install command and -short", o.failed, o.skipped)
	}
	path, o := binary("Debian: apt-get install dash", "no-such-tool-1", "sh")
	if o.failed != "" || o.skipped != "" || !strings.HasSuffix(path, "/sh") {
		t.Errorf("the second name installed: got %q (failed %q, skipped %q), want its path", path, o.failed, o.skipped)
	}
}
