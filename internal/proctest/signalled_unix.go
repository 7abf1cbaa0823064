//go:build unix

package proctest

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/childproc"
)

// awaitAtMost bounds Signalled.Await: a process that starts or logs slower
// than this on a loaded machine is a failure worth reading.
const awaitAtMost = 20 * time.Second

// Signalled is a process under test that prints lines to its standard
// output (a function binary: fnserve's JSON log lines, echofn's text), to
// which the test sends signals to see how it stops.
type Signalled struct {
	tb     testing.TB
	cmd    *exec.Cmd
	out    *lineLog
	stderr *Output
	exited chan struct{}
	err    error // cmd.Wait's result, once exited is closed
	next   int   // the first line Await has not looked at
}

// StartSignalled starts cmd with its standard output kept line by line (none
// is ever dropped) and its standard error kept for the log of a failed
// test, and kills it when the test ends; on Linux the kernel kills it too if
// the test process dies first (childproc.Start).
func StartSignalled(tb testing.TB, cmd *exec.Cmd) *Signalled {
	tb.Helper()
	p := &Signalled{tb: tb, cmd: cmd, out: newLineLog(), stderr: &Output{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.stderr
	waited, err := childproc.Start(cmd)
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = <-waited // every byte of its output copied
		close(p.exited)
		p.out.close()
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if tb.Failed() {
			tb.Logf("%s %v:\n%s%s", filepath.Base(cmd.Path), cmd.Args[1:], strings.Join(p.out.all(), "\n"), p.stderr)
		}
	})
	return p
}

// Await returns the first line that contains s, of those printed after the
// line the previous Await returned; the test fails when none comes within
// 20 s or the process ends first.
func (p *Signalled) Await(s string) string {
	p.tb.Helper()
	deadline := time.Now().Add(awaitAtMost)
	for {
		lines, more, closed := p.out.from(p.next)
		for i, l := range lines {
			if strings.Contains(l, s) {
				p.next += i + 1
				return l
			}
		}
		p.next += len(lines)
		if closed {
			p.tb.Fatalf("the process ended (%v) before it printed a line with %q", p.err, s)
		}
		select {
		case <-more:
		case <-time.After(time.Until(deadline)):
			p.tb.Fatalf("no line with %q within %s", s, awaitAtMost)
		}
	}
}

// Signal sends s to the process.
func (p *Signalled) Signal(s syscall.Signal) {
	p.tb.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		p.tb.Fatal(err)
	}
}

// StaysUp fails the test, saying what ended it, when the process ends
// within d.
func (p *Signalled) StaysUp(d time.Duration, what string) {
	p.tb.Helper()
	select {
	case <-p.exited:
		p.tb.Fatalf("%s ended the process: %v", what, p.err)
	case <-time.After(d):
	}
}

// EndsBy fails the test unless the process ends within d, killed by s
// (not having caught it).
func (p *Signalled) EndsBy(s syscall.Signal, d time.Duration, what string) {
	p.tb.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.tb.Fatalf("%s did not end the process within %s", what, d)
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		p.tb.Fatalf("after %s the process ended with %v, want killed by %v", what, p.err, s)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != s {
		p.tb.Errorf("after %s the process ended with %v, want killed by %v", what, p.err, s)
	}
}

// lineLog keeps what a process writes as lines; from wakes its readers at
// every new line and at the end.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	more    chan struct{} // closed and replaced at each new line
	closed  bool
}

func newLineLog() *lineLog { return &lineLog{more: make(chan struct{})} }

// Write implements io.Writer.
func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.more)
		l.more = make(chan struct{})
	}
	return len(b), nil
}

// close ends the log: a last line without a newline counts as a line.
func (l *lineLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.lines = append(l.lines, string(l.partial))
		l.partial = nil
	}
	l.closed = true
	close(l.more)
}

// from returns the lines from index i on, a channel closed at the next
// line, and whether the log has ended.
func (l *lineLog) from(i int) (lines []string, more <-chan struct{}, closed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines[min(i, len(l.lines)):], l.more, l.closed
}

// all returns every line.
func (l *lineLog) all() []string {
	lines, _, _ := l.from(0)
	return lines
}
