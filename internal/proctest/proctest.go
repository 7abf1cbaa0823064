// Package proctest starts a helper process for a test — a private Redis, a
// PgBouncer, an exporter — and stops it when the test ends, or on Linux when
// the test process dies without ending it (killed), keeping its output for
// the test's log.
package proctest

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shopfaas/shop/internal/childproc"
)

// Output collects a process's output; safe to read while it is written.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Start starts cmd with its standard output and error in out, and kills it
// when the test ends, logging out if the test failed; on Linux the kernel
// kills it too if the test process dies first, even by SIGKILL
// (childproc.Start). exited is closed once the process has exited (on its
// own, or killed).
func Start(tb testing.TB, cmd *exec.Cmd) (out *Output, exited <-chan struct{}) {
	tb.Helper()
	out = &Output{}
	cmd.Stdout, cmd.Stderr = out, out
	waited, err := childproc.Start(cmd)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { <-waited; close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if tb.Failed() {
			tb.Logf("%s %v:\n%s", filepath.Base(cmd.Path), cmd.Args[1:], out.String())
		}
	})
	return out, done
}

// StartReady starts parent, a copy of the test binary playing the process
// that starts a helper (the test kills it to see the helper die with it), as
// Start does, and waits for it to print "ready" on a line of its own; what
// it prints after that is read and dropped (a parent writing to a closed
// pipe would die of SIGPIPE). exited is closed once parent has exited.
func StartReady(tb testing.TB, parent *exec.Cmd) (exited <-chan struct{}) {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	stderr := &Output{}
	parent.Stdout, parent.Stderr = w, stderr
	waited, err := childproc.Start(parent)
	_ = w.Close() // parent holds its own copy
	if err != nil {
		_ = r.Close()
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { <-waited; close(done) }()
	tb.Cleanup(func() { _ = parent.Process.Kill(); <-done })
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	if line != "ready\n" {
		_ = parent.Process.Kill()
		<-done // its standard error copied to the last byte
		_ = r.Close()
		tb.Fatalf("%s %v printed %q (%v), want ready\n%s", filepath.Base(parent.Path), parent.Args[1:], line, err, stderr)
	}
	go func() { _, _ = io.Copy(io.Discard, br); _ = r.Close() }() // until parent exits
	return done
}
