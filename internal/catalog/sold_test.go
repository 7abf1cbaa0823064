package catalog_test

import (
	"math"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
)

// A placed order adds its quantities, a cancelled one takes them back, and a
// line no count can come from makes the whole event invalid.
func TestSoldDeltasFollowTheOrder(t *testing.T) {
	a, b, order := uuid.New(), uuid.New(), uuid.New()
	lines := []orders.Line{{ProductID: a, Quantity: 2}, {ProductID: b, Quantity: 1}}
	placed, err := catalog.SoldDeltas(order, false, lines)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]catalog.SoldDelta{{ProductID: a, Delta: 2}, {ProductID: b, Delta: 1}}, placed); diff != "" {
		t.Errorf("placed (-want +got):\n%s", diff)
	}
	cancelled, err := catalog.SoldDeltas(order, true, lines)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]catalog.SoldDelta{{ProductID: a, Delta: -2}, {ProductID: b, Delta: -1}}, cancelled); diff != "" {
		t.Errorf("cancelled (-want +got):\n%s", diff)
	}
	for name, bad := range map[string][]orders.Line{
		"no lines":       nil,
		"no product":     {{Quantity: 1}},
		"zero quantity":  {{ProductID: a}},
		"negative":       {{ProductID: a, Quantity: 1}, {ProductID: b, Quantity: -1}},
		"over the limit": {{ProductID: a, Quantity: orders.MaxQuantity + 1}},
		"huge":           {{ProductID: a, Quantity: math.MaxInt64}},
		"too many lines": slices.Repeat([]orders.Line{{ProductID: a, Quantity: 1}}, orders.MaxLines+1),
	} {
		if _, err := catalog.SoldDeltas(order, false, bad); !fault.Is(err, fault.Malformed, fault.CodeInvalidEvent) {
			t.Errorf("%s: err %v, want malformed invalid_event", name, err)
		}
	}
	// Without its order id, the sale would be recorded under the zero id and
	// every later such event taken for its duplicate.
	if _, err := catalog.SoldDeltas(uuid.Nil, false, lines); !fault.Is(err, fault.Malformed, fault.CodeInvalidEvent) {
		t.Errorf("no order id: err %v, want malformed invalid_event", err)
	}
	if _, err := catalog.SoldDeltas(order, false, []orders.Line{{ProductID: a, Quantity: orders.MaxQuantity}}); err != nil {
		t.Errorf("a line at the limit: %v", err)
	}
}
