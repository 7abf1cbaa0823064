package notifications_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		{"placed", notifications.Event{ID: ev, Type: events.OrderPlaced, UserID: user, OrderID: order}, notifications.TypeOrderPlaced, "Your order 89abcdef is confirmed", 0, false},
		{"cancelled", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order}, notifications.TypeOrderCanceled, "Your order 89abcdef was cancelled and refunded", 0, false},
		{"cancelled by request", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order, Reason: orders.ReasonCancelled}, notifications.TypeOrderCanceled, "Your order 89abcdef was cancelled and refunded", 0, false},
		{"cancelled out of stock", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order, Reason: orders.ReasonOutOfStock}, notifications.TypeOrderCanceled, "Your order 89abcdef was cancelled: an item is out of stock; if a payment was taken, it is refunded", 0, false},
		{"cancelled rejected", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order, Reason: orders.ReasonRejected}, notifications.TypeOrderCanceled, "Your order 89abcdef could not be completed and was cancelled; if a payment was taken, it is refunded", 0, false},
		{"cancelled for a later reason", notifications.Event{ID: ev, Type: events.OrderCancelled, UserID: user, OrderID: order, Reason: "later"}, notifications.TypeOrderCanceled, "Your order 89abcdef was cancelled; if a payment was taken, it is refunded", 0, false},
		{"payment failed", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order}, notifications.TypePaymentFailed, "The payment for your order 89abcdef did not go through", 0, false},
		{"payment rejected", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order, Reason: orders.ReasonRejected}, notifications.TypePaymentFailed, "The payment for your order 89abcdef did not go through; if a payment was taken, it is refunded", 0, false},
		{"payment declined", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order, Reason: orders.ReasonPaymentDeclined}, notifications.TypePaymentFailed, "The payment for your order 89abcdef was declined", 0, false},
		{"payment token refused", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order, Reason: orders.ReasonInvalidToken}, notifications.TypePaymentFailed, "The payment details for your order 89abcdef were not accepted; if a payment was taken, it is refunded", 0, false},
		{"order given up", notifications.Event{ID: ev, Type: events.OrderPaymentFailed, UserID: user, OrderID: order, Reason: orders.ReasonExpired}, notifications.TypePaymentFailed, "Your order 89abcdef could not be completed in time; if a payment was taken, it is refunded", 0, false},
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

// v7At is a UUIDv7 made at ms (milliseconds since the Unix epoch), as
// orders.New makes an order's id then: ms in its first 48 bits, random bits
// after the version.
func v7At(t *testing.T, ms int64) uuid.UUID {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		id[i] = byte(ms >> (8 * (5 - i)))
	}
	return id
}

// Two orders placed 2 s apart get subjects with different order numbers:
// the number is the id's random tail. Until 2026-12-07 it was the id's first
// 8 hex digits, for a UUIDv7 the top 32 bits of its millisecond timestamp,
// the same for every order placed within one 65.536 s window: a checkout
// declined and retried with another card read "declined" and "confirmed"
// under one number.
func TestOrdersPlacedSecondsApartHaveDifferentNumbers(t *testing.T) {
	start := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC).UnixMilli() &^ 0xffff // a window's start
	declined, placed := v7At(t, start), v7At(t, start+2000)
	subjects := make([]string, 2)
	for i, ev := range []notifications.Event{
		{ID: uuid.New(), Type: events.OrderPaymentFailed, UserID: uuid.New(), OrderID: declined, Reason: orders.ReasonPaymentDeclined},
		{ID: uuid.New(), Type: events.OrderPlaced, UserID: uuid.New(), OrderID: placed},
	} {
		n, err := notifications.New(ev, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		subjects[i] = n.Subject
	}
	number := func(subject string) string {
		_, after, _ := strings.Cut(subject, "order ")
		number, _, _ := strings.Cut(after, " ")
		return number
	}
	if a, b := number(subjects[0]), number(subjects[1]); a == b || len(a) != 8 || len(b) != 8 {
		t.Errorf("orders %s and %s: subjects %q and %q, want two different 8-digit numbers", declined, placed, subjects[0], subjects[1])
	}
}

// maskedEmails is what MaskEmail makes of each address: TestMaskEmail's
// table and FuzzMaskEmail's seeds.
var maskedEmails = map[string]string{"alice@example.com": "a***@example.com", "x": "***", "@d": "***",
	"élodie@example.fr": "é***@example.fr", "李@例子.中国": "李***@例子.中国",
	`".john@home"@example.com`: `.***@example.com`, ".john@home@example.com": ".***@example.com",
	`"a b"@example.com`: "a***@example.com", `"élodie m"@example.fr`: "é***@example.fr",
	`"李 四"@例子.中国`: "李***@例子.中国", `"\"x"@example.com`: "***@example.com",
	`"\"abc"@example.com`: "***@example.com", `"\\x"@example.com`: "***@example.com",
	`"\a"@example.com`: "***@example.com", `"\@example.com`: "***@example.com", `""@example.com`: "***@example.com",
	`"@example.com`: "***@example.com", "\xc3lodie@example.fr": "***@example.fr", "\"\xe6\x9d\"@example.com": "***@example.com"}

// A masked address shows the local part's first character, whole, and the
// domain; of a quoted local part, the first character of the text it quotes
// (until 2026-12-06 the opening quote: "\"***@example.com" for every one),
// none where that text opens with a quoted-pair (until 2026-12-06 the
// escaped character: "\"***@example.com" again for "\"\\\"abc\"@example.com").
func TestMaskEmail(t *testing.T) {
	for in, want := range maskedEmails {
		if got := notifications.MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzMaskEmail: whatever the address, the masked one is at most one
// character of the local part, whole (valid UTF-8, never a byte of a longer
// character), then "***@" and what follows the last '@'; "***" without an
// '@' after the first byte. The character is the local part's first, or,
// when it opens with a quote, the first the quote opens: never that quote
// itself, and none where the quoted text opens with a '\' (a quoted-pair,
// neither half of which is shown, or a lone '\') or quotes nothing.
func FuzzMaskEmail(f *testing.F) {
	for s := range maskedEmails {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, email string) {
		got := notifications.MaskEmail(email)
		at := strings.LastIndexByte(email, '@')
		if at <= 0 {
			if got != "***" {
				t.Fatalf("MaskEmail(%q) = %q, want ***", email, got)
			}
			return
		}
		local := email[:at]
		shown, ok := strings.CutSuffix(got, "***@"+email[at+1:])
		if !ok || !utf8.ValidString(shown) || utf8.RuneCountInString(shown) > 1 {
			t.Fatalf("MaskEmail(%q) = %q: want at most one whole character, then ***@ and the domain", email, got)
		}
		first := func(s string) string { // s's first character, "" for none or an invalid byte
			if r, size := utf8.DecodeRuneInString(s); r != utf8.RuneError || size > 1 {
				return s[:size]
			}
			return ""
		}
		inside, quoted := strings.CutPrefix(local, `"`)
		switch c := first(inside); {
		case !quoted:
			if shown != first(local) {
				t.Fatalf("MaskEmail(%q) = %q: want the local part's first character %q", email, got, first(local))
			}
		case c == `"` || c == `\`:
			if shown != "" {
				t.Fatalf("MaskEmail(%q) = %q: want no character of a local part that quotes nothing or opens with a quoted-pair", email, got)
			}
		case shown != c:
			t.Fatalf("MaskEmail(%q) = %q: want the first quoted character %q", email, got, c)
		}
	})
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
