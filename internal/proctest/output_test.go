package proctest_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/shopfaas/shop/internal/proctest"
)

// TestOutputKeepsEveryConcurrentWrite: writes from many goroutines, read
// while they write, all land whole.
func TestOutputKeepsEveryConcurrentWrite(t *testing.T) {
	var b proctest.Output
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("line\n"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("line\n", 800) {
		t.Fatalf("after 800 concurrent writes of %q: %d bytes, want %d", "line\n", len(got), 800*len("line\n"))
	}
}
