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
	quotesSubjects(t, events.OrderCancelled, orders.ReasonCancelled, orders.ReasonOutOfStock, orders.ReasonRejected)
}

// docs/events.md quotes the subject of a failed payment's notification for
// the reasons whose order the checkout refunds (a refused token, a charge
// rejected otherwise), refund clause included. Until 2026-12-07 neither
// subject had it, and the doc paraphrased them.
func TestTheEventsDocQuotesTheRefundedPaymentFailuresSubjects(t *testing.T) {
	quotesSubjects(t, events.OrderPaymentFailed, orders.ReasonInvalidToken, orders.ReasonRejected)
}

// quotesSubjects checks that docs/events.md quotes, for each reason, the
// subject New writes for an event of type typ.
func quotesSubjects(t *testing.T, typ string, reasons ...string) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	order := uuid.MustParse("01234567-89ab-7def-8123-456789abcdef")
	for _, reason := range reasons {
		n, err := notifications.New(notifications.Event{ID: uuid.New(), Type: typ, UserID: uuid.New(),
			OrderID: order, Reason: reason}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		quote := `"` + strings.Replace(n.Subject, "89abcdef", "…", 1) + `"`
		if !strings.Contains(string(doc), quote) {
			t.Errorf("docs/events.md does not quote the subject of %s for %s: %s", typ, reason, quote)
		}
	}
}
