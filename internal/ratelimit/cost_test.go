//go:build !race

// The race detector adds allocations of its own: counts are taken without it
// (make unit runs this test again without -race).

package ratelimit_test

import (
	"context"
	"testing"
)

// TestACountAllocatesLittle: a checkout's count, INCR and EXPIRE NX in one
// pipeline (TestACountIsTwoRedisCommands), allocates little (issue 11: 31
// allocations with MULTI and EXEC before).
func TestACountAllocatesLittle(t *testing.T) {
	l, _, _, _ := countedLimiter(t)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() { _ = l.Allow(ctx, "user-b") })
	t.Logf("%.0f allocations per count", allocs)
	if allocs > 23 {
		t.Errorf("%.0f allocations per count, want at most 23", allocs)
	}
}
