package postgres

import (
	"testing"
	"time"
)

// SetFinishTimeout shortens Detached's timeout for the test.
func SetFinishTimeout(tb testing.TB, d time.Duration) {
	old := finishTimeout
	finishTimeout = d
	tb.Cleanup(func() { finishTimeout = old })
}
