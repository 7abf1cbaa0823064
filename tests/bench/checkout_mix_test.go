package bench

import (
	"testing"

	"github.com/google/uuid"
)

// The checkout scenario asks for the hot product every fifth order until an
// out_of_stock answer, and never after it: its figures are orders, not a
// stream of refusals.
func TestTheHotProductIsAskedForUntilItSellsOut(t *testing.T) {
	hot, a, b := uuid.New(), uuid.New(), uuid.New()
	h := &hotUntilSoldOut{hot: hot, ample: []uuid.UUID{a, b}}
	count := func(from, to int) map[uuid.UUID]int {
		got := map[uuid.UUID]int{}
		for n := from; n < to; n++ {
			p := h.product(n)
			if p == hot && n%5 != 0 {
				t.Errorf("order %d asked for the hot product", n)
			}
			got[p]++
		}
		return got
	}
	if got := count(0, 100); got[hot] != 20 || got[a] == 0 || got[b] == 0 {
		t.Errorf("before the sell-out: %d of 100 orders for the hot product (want 20), %d and %d for the others", got[hot], got[a], got[b])
	}
	h.outOfStock()
	if got := count(100, 200); got[hot] != 0 || got[a]+got[b] != 100 || got[a] == 0 || got[b] == 0 {
		t.Errorf("after the sell-out: %d of 100 orders for the hot product (want 0), %d and %d for the others", got[hot], got[a], got[b])
	}
}
