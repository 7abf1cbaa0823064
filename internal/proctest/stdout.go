package proctest

import (
	"io"
	"os"
	"testing"
)

// Stdout runs f with the process's standard output sent to a pipe and
// returns what f wrote there (the JSON log lines of a main package's run,
// which logs to os.Stdout). Standard output is put back when f returns, and
// at the test's end should f never return. Tests that call it must not run
// in parallel: os.Stdout is the process's.
func Stdout(tb testing.TB, f func()) string {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	tb.Cleanup(func() { os.Stdout = stdout })
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	f()
	os.Stdout = stdout
	_ = w.Close()
	return <-out
}
