package catalog

import (
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
)

// SoldDelta is a change of one product's sold count.
type SoldDelta struct {
	ProductID uuid.UUID
	Delta     int64
}

// SoldDeltas turns an order's lines into sold-count changes: positive for a
// placed order, negative for a cancelled one. An order without lines, or a
// line without a product or with a non-positive quantity, makes the event
// invalid (fault.Malformed, invalid_event): retrying cannot help.
func SoldDeltas(cancelled bool, lines []orders.Line) ([]SoldDelta, error) {
	if len(lines) == 0 {
		return nil, fault.E(fault.Malformed, fault.CodeInvalidEvent, "order event has no items")
	}
	out := make([]SoldDelta, 0, len(lines))
	for _, l := range lines {
		if l.ProductID == uuid.Nil || l.Quantity <= 0 {
			return nil, fault.E(fault.Malformed, fault.CodeInvalidEvent, "every item needs a product_id and a positive quantity")
		}
		d := int64(l.Quantity)
		if cancelled {
			d = -d
		}
		out = append(out, SoldDelta{ProductID: l.ProductID, Delta: d})
	}
	return out, nil
}
