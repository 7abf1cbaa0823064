package proctest_test

import (
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
