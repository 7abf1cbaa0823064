package catalog

import (
	"fmt"

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
// placed order, negative for a cancelled one. An event without its order id
// (the sale would be recorded under the zero id, and every later such event
// taken for its duplicate), without lines or with more than orders.MaxLines,
// or a line without a product or with a quantity outside 1..orders.MaxQuantity
// (the bounds a checkout enforces; an unbounded one could push a sold count
// past bigint and poison the product's later sales), makes the event invalid
// (fault.Malformed, invalid_event): retrying cannot help.
func SoldDeltas(orderID uuid.UUID, cancelled bool, lines []orders.Line) ([]SoldDelta, error) {
	if orderID == uuid.Nil {
		return nil, fault.E(fault.Malformed, fault.CodeInvalidEvent, "order event has no order_id")
	}
	if len(lines) == 0 || len(lines) > orders.MaxLines {
		return nil, fault.E(fault.Malformed, fault.CodeInvalidEvent, fmt.Sprintf("order event must have 1 to %d items", orders.MaxLines))
	}
	out := make([]SoldDelta, 0, len(lines))
	for _, l := range lines {
		if l.ProductID == uuid.Nil || l.Quantity < 1 || l.Quantity > orders.MaxQuantity {
			return nil, fault.E(fault.Malformed, fault.CodeInvalidEvent,
				fmt.Sprintf("every item needs a product_id and a quantity from 1 to %d", orders.MaxQuantity))
		}
		d := int64(l.Quantity)
		if cancelled {
			d = -d
		}
		out = append(out, SoldDelta{ProductID: l.ProductID, Delta: d})
	}
	return out, nil
}
