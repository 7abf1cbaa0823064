// Package notifications decides what the shop tells a user about the events
// that concern them (registration, order placed, cancelled, payment failed):
// the notification kept for GET /users/me/notifications and the email sent
// when SMTP is configured. It does no I/O.
package notifications

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
)

// Types of notification, stable strings of the API.
const (
	TypeWelcome       = "welcome"
	TypeOrderPlaced   = "order_placed"
	TypeOrderCanceled = "order_cancelled"
	TypePaymentFailed = "order_payment_failed"
)

// Notification is one message to a user, created once per event.
type Notification struct {
	ID      uuid.UUID
	UserID  uuid.UUID
	EventID uuid.UUID
	Type    string
	Subject string
	// OrderID is set for order notifications.
	OrderID   *uuid.UUID
	CreatedAt time.Time
	// EmailedAt is when the email went out; nil while it is owed (or when no
	// SMTP server is configured).
	EmailedAt *time.Time
	// EmailRefusedAt is when the mail server refused the email for good
	// (ErrUndeliverable): it is never sent, and no longer owed.
	EmailRefusedAt *time.Time
}

// View is the API shape of a notification.
type View struct {
	ID        uuid.UUID  `json:"id"`
	Type      string     `json:"type"`
	Subject   string     `json:"subject"`
	OrderID   *uuid.UUID `json:"order_id,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// View returns the API shape of n.
func (n Notification) View() View {
	return View{ID: n.ID, Type: n.Type, Subject: n.Subject, OrderID: n.OrderID, CreatedAt: n.CreatedAt.UTC()}
}

// Event is what a notification is made from: the event's id and type and the
// user (and order) it concerns.
type Event struct {
	ID   uuid.UUID `json:"-"` // the envelope's id
	Type string    `json:"-"` // the envelope's type
	// UserID and OrderID are read from the event's data: user.registered.v1
	// (users.Registered) and the order events (orders.EventData) both carry
	// user_id; the order events carry order_id.
	UserID  uuid.UUID `json:"user_id"`
	OrderID uuid.UUID `json:"order_id"` // uuid.Nil for user events
	// Reason is an ended order's reason (orders.EventData.Reason): it words
	// a failed payment's subject, so a customer whose order recovery gave
	// up on hears that, not only that the payment did not go through.
	Reason string `json:"reason"`
}

// Ends reports whether a notification of type typ tells its order's end:
// cancelled, or its payment failed. An order's placing, when it has one,
// always comes before its end, so the placing's email must not follow the
// end's (notifysvc.Service.Notify).
func Ends(typ string) bool { return typ == TypeOrderCanceled || typ == TypePaymentFailed }

// Types are the event types that produce a notification.
var Types = []string{events.UserRegistered, events.OrderPlaced, events.OrderCancelled, events.OrderPaymentFailed}

// New decides the notification for ev at now. An event without a user, an
// order event without an order, or an unknown type is fault.Malformed
// "invalid_event": it can never be notified, so the consumer refuses it.
func New(ev Event, now time.Time) (Notification, error) {
	if ev.ID == uuid.Nil || ev.UserID == uuid.Nil {
		return Notification{}, fault.E(fault.Malformed, fault.CodeInvalidEvent, "event id and user_id are required")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Notification{}, fault.Internalf("notification id: %w", err)
	}
	n := Notification{ID: id, UserID: ev.UserID, EventID: ev.ID, CreatedAt: now.UTC()}
	short := ""
	if ev.Type != events.UserRegistered {
		if ev.OrderID == uuid.Nil {
			return Notification{}, fault.E(fault.Malformed, fault.CodeInvalidEvent, "order_id is required")
		}
		o := ev.OrderID
		n.OrderID = &o
		// The order's number in the subject is the id's last 8 hex digits,
		// random bits of a UUIDv7. Its first 8 (until 2026-12-07) are the top
		// of its millisecond timestamp, one number for every order placed
		// within 65.536 s: a declined checkout and its retry shared one.
		s := o.String()
		short = s[len(s)-8:]
	}
	switch ev.Type {
	case events.UserRegistered:
		n.Type, n.Subject = TypeWelcome, "Welcome to the shop"
	case events.OrderPlaced:
		n.Type, n.Subject = TypeOrderPlaced, fmt.Sprintf("Your order %s is confirmed", short)
	case events.OrderCancelled:
		n.Type, n.Subject = TypeOrderCanceled, cancelled(ev.Reason, short)
	case events.OrderPaymentFailed:
		n.Type, n.Subject = TypePaymentFailed, paymentFailed(ev.Reason, short)
	default:
		return Notification{}, fault.E(fault.Invalid, fault.CodeUnsupportedEvent, "no notification for events of type "+ev.Type)
	}
	return n, nil
}

// paymentFailed is the subject of a failed payment's notification for the
// order's reason; an unknown or missing reason (an event written before
// reasons were read, or a reason added later) gets the general one. A
// refused token and a charge rejected otherwise are refunded by the checkout
// (a capture may be in flight: docs/checkout.md), so their subjects promise
// the refund of a payment taken, as a cancellation's do (until 2026-12-07
// they said nothing of it); a decline is not refunded, nothing was taken.
func paymentFailed(reason, order string) string {
	switch reason {
	case orders.ReasonPaymentDeclined:
		return fmt.Sprintf("The payment for your order %s was declined", order)
	case orders.ReasonInvalidToken:
		return fmt.Sprintf("The payment details for your order %s were not accepted; if a payment was taken, it is refunded", order)
	case orders.ReasonRejected:
		return fmt.Sprintf("The payment for your order %s did not go through; if a payment was taken, it is refunded", order)
	case orders.ReasonExpired:
		return fmt.Sprintf("Your order %s could not be completed in time; if a payment was taken, it is refunded", order)
	}
	return fmt.Sprintf("The payment for your order %s did not go through", order)
}

// cancelled is the subject of a cancelled order's notification for the
// order's reason: cancelled by request (cancel-order, a confirmed order, so
// paid; also an event without a reason, which only such a cancellation wrote
// before the checkout's were told), or before it was placed, by the checkout
// or its recovery (out of stock, or refused), when a payment may have been
// taken and refunded or never taken: the event (orders.EventData) does not
// say which, so the subject promises a refund only of a payment taken. A
// reason added later gets the general one.
func cancelled(reason, order string) string {
	switch reason {
	case orders.ReasonCancelled, "":
		return fmt.Sprintf("Your order %s was cancelled and refunded", order)
	case orders.ReasonOutOfStock:
		return fmt.Sprintf("Your order %s was cancelled: an item is out of stock; if a payment was taken, it is refunded", order)
	case orders.ReasonRejected:
		return fmt.Sprintf("Your order %s could not be completed and was cancelled; if a payment was taken, it is refunded", order)
	}
	return fmt.Sprintf("Your order %s was cancelled; if a payment was taken, it is refunded", order)
}

// Body is the plain-text email body of n.
func (n Notification) Body() string {
	var b strings.Builder
	b.WriteString(n.Subject + ".\r\n\r\n")
	if n.OrderID != nil {
		fmt.Fprintf(&b, "Order: %s\r\n", n.OrderID)
	}
	b.WriteString("You can see all your notifications in your account.\r\n")
	return b.String()
}

// ErrUndeliverable is what a mail transport's error wraps when the email can
// never be delivered as it is: the server refused it for good (an SMTP 5xx
// reply to the recipient or the message) or the address cannot be sent to.
// Sending it again would get the same answer, so it is not retried.
var ErrUndeliverable = errors.New("the email cannot be delivered")

// ErrUnanswered is what a mail transport's error wraps when the server was
// handed the whole message (SMTP: the final dot was written) but its answer
// never came: the email may have gone out. Sending it again could send it
// twice, so it is recorded sent and never sent again (notifysvc): an email
// goes out at most once.
var ErrUnanswered = errors.New("the email was handed over but not answered")

// Email is a notification's email: what a mail transport needs to send it.
// The transport composes and encodes the message itself.
type Email struct {
	// To is the recipient's address.
	To string
	// Subject is the notification's subject.
	Subject string
	// Text is the plain-text body.
	Text string
	// MessageID is the Message-ID without angle brackets, the same for every
	// attempt to send one notification.
	MessageID string
	// Date is when the notification was created.
	Date time.Time
}

// Email is the email of n to the address to.
func (n Notification) Email(to string) Email {
	return Email{To: to, Subject: n.Subject, Text: n.Body(), MessageID: n.ID.String() + "@shop", Date: n.CreatedAt.UTC()}
}

// MaskEmail hides an address for logs: "a***@example.com". Full addresses
// never appear in logs. It keeps the local part's first character, not its
// first byte: until 2026-12-06 "élodie@…" became an invalid UTF-8 byte
// and "***". The domain is what follows the last '@': a quoted local part
// may hold one ("\"a@b\"@example.com"), whose rest would show otherwise.
// A quoted local part (RFC 5322's quoted-string) shows the first character
// of the text it quotes, as an unquoted one shows its own: "\"a b\"@…"
// masks to "a***@…" (until 2026-12-06 to "\"***@…", the opening quote). One
// whose quoted text opens with a quoted-pair ('\' and the character it
// escapes, "\"\\\"abc\"@…") shows none: either half of the pair, shown
// alone, reads as a quote or a stray escape (until 2026-12-06 it showed the
// escaped character, a '"' there looking like the opening quote of before),
// and a lone '\' likewise. A local part whose first character is not valid
// UTF-8, or that quotes nothing ("\"\"@…"), shows none either: "***@…".
func MaskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return "***"
	}
	local, domain := email[:at], email[at+1:]
	return firstCharacter(local) + "***@" + domain
}

// firstCharacter is what MaskEmail shows of local: its first character,
// whole, or that of the text a leading '"' quotes; "" when there is none,
// when that text opens with a '\' (a quoted-pair, or a lone '\'), or when
// it is not valid UTF-8.
func firstCharacter(local string) string {
	if quoted, ok := strings.CutPrefix(local, `"`); ok {
		if strings.HasPrefix(quoted, `"`) || strings.HasPrefix(quoted, `\`) { // ""@… quotes nothing; \x is a pair
			return ""
		}
		local = quoted
	}
	r, size := utf8.DecodeRuneInString(local)
	if r == utf8.RuneError && size <= 1 {
		return ""
	}
	return local[:size]
}
