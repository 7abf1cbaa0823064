package notifications_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/orders"
)

func TestNew(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	user, order := uuid.New(), uuid.MustParse("01234567-89ab-7def-8123-456789abcdef")
	ev := uuid.New()
	tests := []struct {
		name     string
		ev       notifications.Event
		wantType string
		wantSubj string
		wantKind fault.Kind
		wantErr  bool
	}{
		{"welcome", notifications.Event{ID: ev, Type: events.UserRegistered, UserID: user}, notifications.TypeWelcome, "Welcome to the shop", 0, false},
		{"placed", notifications.Event{ID: ev, Type: events.OrderPlaced, UserID: user, OrderID: order}, notifications.TypeOrderPlaced, "Your order 01234567 is confirmed", 0, false},
		{"cancelled", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order}, notifications.TypeOrderCanceled, "Your order 01234567 was cancelled and refunded", 0, false},
		{"cancelled by request", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order, Reason: orders.ReasonCancelled}, notifications.TypeOrderCanceled, "Your order 01234567 was cancelled and refunded", 0, false},
		{"cancelled out of stock", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order, Reason: orders.ReasonOutOfStock}, notifications.TypeOrderCanceled, "Your order 01234567 was cancelled: an item is out of stock; if a payment was taken, it is refunded", 0, false},
		{"cancelled rejected", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order, Reason: orders.ReasonRejected}, notifications.TypeOrderCanceled, "Your order 01234567 could not be completed and was cancelled; if a payment was taken, it is refunded", 0, false},
		{"cancelled for a later reason", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order, Reason: "later"}, notifications.TypeOrderCanceled, "Your order 01234567 was cancelled; if a payment was taken, it is refunded", 0, false},
		{"payment failed", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order}, notifications.TypePaymentFailed, "The payment for your order 01234567 did not go through", 0, false},
		{"payment rejected", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order, Reason: orders.ReasonRejected}, notifications.TypePaymentFailed, "The payment for your order 01234567 did not go through", 0, false},
		{"payment declined", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order, Reason: orders.ReasonPaymentDeclined}, notifications.TypePaymentFailed, "The payment for your order 01234567 was declined", 0, false},
		{"payment token refused", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order, Reason: orders.ReasonInvalidToken}, notifications.TypePaymentFailed, "The payment details for your order 01234567 were not accepted", 0, false},
		{"order given up", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order, Reason: orders.ReasonExpired}, notifications.TypePaymentFailed, "Your order 01234567 could not be completed in time; if a payment was taken, it is refunded", 0, false},
		{"no user", notifications.Event{ID: ev, Type: events.OrderPlaced, OrderID: order}, "", "", fault.Malformed, true},
		{"order event without order", notifications.Event{ID: ev, Type: events.OrderPlaced, UserID: user}, "", "", fault.Malformed, true},
		{"unknown type", notifications.Event{ID: ev, Type: events.StockChanged, UserID: user, OrderID: order}, "", "", fault.Invalid, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := notifications.New(tt.ev, now)
			if tt.wantErr {
				if err == nil || fault.KindOf(err) != tt.wantKind {
					t.Fatalf("err %v, want kind %v", err, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []string{n.Type, n.Subject}
			if diff := cmp.Diff([]string{tt.wantType, tt.wantSubj}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if n.UserID != user || n.EventID != ev || !n.CreatedAt.Equal(now) || n.ID == uuid.Nil {
				t.Errorf("ids or time wrong: %+v", n)
			}
			if (tt.ev.OrderID == uuid.Nil) != (n.OrderID == nil) {
				t.Errorf("order id %v for event order %v", n.OrderID, tt.ev.OrderID)
			}
		})
	}
}

func TestMaskEmail(t *testing.T) {
	for in, want := range map[string]string{"alice@example.com": "a***@example.com", "x": "***", "@d": "***",
		"élodie@example.fr": "é***@example.fr", "李@例子.中国": "李***@例子.中国",
		`".john@home"@example.com`: `"***@example.com`, ".john@home@example.com": ".***@example.com"} {
		if got := notifications.MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEmail(t *testing.T) {
	n, _ := notifications.New(notifications.Event{ID: uuid.New(), Type: events.OrderPlaced, UserID: uuid.New(), OrderID: uuid.New()}, time.Now())
	got := n.Email("bob@example.com")
	want := notifications.Email{To: "bob@example.com", Subject: n.Subject, Text: n.Body(), MessageID: n.ID.String() + "@shop", Date: n.CreatedAt}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !strings.Contains(got.Text, "Order: "+n.OrderID.String()) {
		t.Errorf("the body does not name the order:\n%s", got.Text)
	}
}
