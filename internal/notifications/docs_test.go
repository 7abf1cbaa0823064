package notifications_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/orders"
)

// docs/events.md quotes the subject of a cancelled order's notification for
// each reason as New writes it, the order's short id written "…". Until
// 2026-12-05 it paraphrased out_of_stock's as "could not be completed", the
// subject of rejected only.
func TestTheEventsDocQuotesEachCancellationsSubject(t *testing.T) {
	doc, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	order := uuid.MustParse("01234567-89ab-7def-8123-456789abcdef")
	for _, reason := range []string{orders.ReasonCancelled, orders.ReasonOutOfStock, orders.ReasonRejected} {
		n, err := notifications.New(notifications.Event{ID: uuid.New(), Type: events.OrderCancelled, UserID: uuid.New(),
			OrderID: order, Reason: reason}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		quote := `"` + strings.Replace(n.Subject, "89abcdef", "…", 1) + `"`
		if !strings.Contains(string(doc), quote) {
			t.Errorf("docs/events.md does not quote the subject of a cancellation for %s: %s", reason, quote)
		}
	}
}
