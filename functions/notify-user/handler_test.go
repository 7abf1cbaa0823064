package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopfaas/shop/internal/auth/authtest"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/notifications/notificationsdb"
	"github.com/shopfaas/shop/internal/notifications/notifysvc"
	"github.com/shopfaas/shop/internal/notifications/smtpmail"
	"github.com/shopfaas/shop/internal/notifications/smtpmail/smtptest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/telemetry"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersdb"
	"github.com/shopfaas/shop/internal/users/userstest"
)

// credential is a caller notify-user accepts.
var credential = fntest.Caller("rabbitmq-connector")

type env struct {
	h     http.Handler
	pool  *pgxpool.Pool
	store *notificationsdb.Store
	users *usersdb.Store
	smtp  *smtptest.Server
}

// setup serves notify-user over a fresh users database; with mail, emails go
// to a loopback SMTP server that requires STARTTLS and AUTH (a stand-in for
// the third-party mail provider), with the right password.
func setup(t *testing.T, mail bool) env {
	t.Helper()
	pool := pgtest.Open(t, usersdb.Migrations())
	e := env{pool: pool, store: notificationsdb.New(pool), users: usersdb.New(pool)}
	var m notifysvc.Mailer
	if mail {
		e.smtp = smtptest.New(t, smtptest.StartTLS)
		m = sender(t, e.smtp, smtptest.Password)
	}
	e.h = e.handler(m)
	return e
}

// handler is notify-user over e's database sending with m (nil: no email).
func (e env) handler(m notifysvc.Mailer) http.Handler {
	return New(Deps{Store: e.store, Users: e.users, Mailer: m, Events: fntest.Events(), Internal: fntest.Internal(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// sender logs in to srv with password over STARTTLS, trusting srv's test
// certificate.
func sender(t *testing.T, srv *smtptest.Server, password string) *smtpmail.Sender {
	t.Helper()
	s, err := smtpmail.New(smtpmail.Config{Addr: srv.Addr, From: "shop@example.com", Username: smtptest.Username,
		Password: password, RootCAs: srv.RootCAs, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func deliver(t *testing.T, h http.Handler, body string) (int, Response) {
	t.Helper()
	w := fntest.Do(t, h, http.MethodPost, "/", "application/json", body, "X-Internal-Token", credential, "Shop-Signature", fntest.Sign(body))
	var resp Response
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
	}
	return w.Code, resp
}

func count(t *testing.T, s *notificationsdb.Store, user uuid.UUID) int {
	t.Helper()
	items, _, err := s.List(context.Background(), user, uuid.Nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}

func TestWelcomeOnceWithOneEmail(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "Alice@Example.com", "correct horse battery", "Alice")
	body := fntest.Envelope(t, "test", events.UserRegistered, "", users.RegisteredEvent(u))
	code, first := deliver(t, e.h, body)
	if code != 200 || first.Duplicate || !first.Emailed {
		t.Fatalf("first: %d %+v", code, first)
	}
	code, second := deliver(t, e.h, body)
	if code != 200 || !second.Duplicate || second.NotificationID != first.NotificationID {
		t.Fatalf("second: %d %+v", code, second)
	}
	if n := count(t, e.store, u.ID); n != 1 {
		t.Errorf("%d notifications, want 1", n)
	}
	msgs := e.smtp.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "alice@example.com" || !strings.Contains(msgs[0].Data, "Subject: Welcome to the shop") {
		t.Errorf("emails: %+v", msgs)
	}
}

// The order.payment_failed.v1 of an order recovery gave up on carries its
// reason, and the customer, answered 202 pending hours before, is told that
// the order could not be completed and that a payment taken is refunded.
func TestAGivenUpOrdersEmailSaysSo(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "erin@example.com", "correct horse battery", "Erin")
	o := orders.Order{ID: uuid.MustParse("0193a1b2-0000-7000-8000-000000000001"), UserID: u.ID, Status: orders.PaymentFailed, Reason: orders.ReasonExpired}
	body := fntest.Envelope(t, "test", events.OrderPaymentFailed, "", o.EventData())
	if code, resp := deliver(t, e.h, body); code != 200 || !resp.Emailed {
		t.Fatalf("delivery: %d %+v", code, resp)
	}
	const subject = "Your order 00000001 could not be completed in time; if a payment was taken, it is refunded"
	msgs := e.smtp.Messages()
	if len(msgs) != 1 || !strings.Contains(msgs[0].Data, "Subject: "+subject) {
		t.Errorf("emails: %+v", msgs)
	}
	items, _, err := e.store.List(context.Background(), u.ID, uuid.Nil, 10)
	if err != nil || len(items) != 1 || items[0].Subject != subject {
		t.Errorf("notifications %+v (%v), want one with subject %q", items, err, subject)
	}
}

// The order.cancelled.v1 of a pending order its checkout or recovery
// cancelled (out of stock; charged and refunded, perhaps, or refused before
// any charge) carries its reason, and the customer, perhaps answered 202
// pending before, is told that an item is out of stock and that a payment, if
// one was taken, is refunded (the event does not say whether one was: it
// promises no refund), where a cancellation by request, of an order that was
// paid, says it was cancelled and refunded. Until 2026-12-05 no such event was
// written, and every cancellation's subject was the request's.
func TestACancelledOrdersEmailSaysWhy(t *testing.T) {
	for _, tt := range []struct {
		reason, subject string
	}{
		{orders.ReasonOutOfStock, "Your order 00000002 was cancelled: an item is out of stock; if a payment was taken, it is refunded"},
		{orders.ReasonRejected, "Your order 00000002 could not be completed and was cancelled; if a payment was taken, it is refunded"},
		{orders.ReasonCancelled, "Your order 00000002 was cancelled and refunded"},
	} {
		t.Run(tt.reason, func(t *testing.T) {
			e := setup(t, true)
			u := userstest.Register(t, e.users, "heidi@example.com", "correct horse battery", "Heidi")
			o := orders.Order{ID: uuid.MustParse("0193a1b2-0000-7000-8000-000000000002"), UserID: u.ID, Status: orders.Cancelled, Reason: tt.reason}
			body := fntest.Envelope(t, "test", events.OrderCancelled, "", o.EventData())
			if code, resp := deliver(t, e.h, body); code != 200 || !resp.Emailed {
				t.Fatalf("delivery: %d %+v", code, resp)
			}
			msgs := e.smtp.Messages()
			if len(msgs) != 1 || !strings.Contains(msgs[0].Data, "Subject: "+tt.subject) {
				t.Errorf("emails: %+v; want one with subject %q", msgs, tt.subject)
			}
			items, _, err := e.store.List(context.Background(), u.ID, uuid.Nil, 10)
			if err != nil || len(items) != 1 || items[0].Subject != tt.subject || items[0].Type != notifications.TypeOrderCanceled {
				t.Errorf("notifications %+v (%v), want one with subject %q", items, err, tt.subject)
			}
		})
	}
}

// markFails is a notifications store whose record of a sent email fails
// its first n tries, as in a database blip.
type markFails struct {
	*notificationsdb.Store
	n atomic.Int32
}

func (m *markFails) MarkEmailed(ctx context.Context, id uuid.UUID) error {
	if m.n.Add(-1) >= 0 {
		return fault.E(fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	return m.Store.MarkEmailed(ctx, id)
}

// A sent email whose record fails for a moment is recorded by a later try of
// the same delivery, which answers 200: one email. Until 2026-12-05 the
// delivery answered 503, every retry found the claim held, and once the
// lease ran out a retry took it and sent the email again.
func TestASentEmailsRecordIsTriedAgain(t *testing.T) {
	e := setup(t, true)
	store := &markFails{Store: e.store}
	store.n.Store(2)
	h := New(Deps{Store: store, Users: e.users, Mailer: sender(t, e.smtp, smtptest.Password), Events: fntest.Events(),
		Internal: fntest.Internal(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	u := userstest.Register(t, e.users, "frank@example.com", "correct horse battery", "Frank")
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
	if code, resp := deliver(t, h, body); code != 200 || !resp.Emailed {
		t.Fatalf("delivery: %d %+v; want 200, emailed", code, resp)
	}
	items, _, err := e.store.List(context.Background(), u.ID, uuid.Nil, 10)
	if err != nil || len(items) != 1 || items[0].EmailedAt == nil {
		t.Fatalf("notifications %+v (%v); want one, recorded as emailed", items, err)
	}
	if m := len(e.smtp.Messages()); m != 1 {
		t.Errorf("%d emails, want 1", m)
	}
}

// Ten concurrent deliveries of one event store one notification.
func TestConcurrentDuplicates(t *testing.T) {
	e := setup(t, false)
	user := uuid.New()
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: user, Status: orders.Confirmed})
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := 0
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, resp := deliver(t, e.h, body)
			if code != 200 {
				t.Errorf("status %d", code)
			}
			mu.Lock()
			if !resp.Duplicate {
				firsts++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if n := count(t, e.store, user); n != 1 || firsts != 1 {
		t.Errorf("%d notifications, %d first deliveries; want 1 and 1", n, firsts)
	}
}

// Ten concurrent deliveries of one event send its email once: the sending is
// claimed, not just checked. A delivery that finds the sending claimed by
// another is 503 (retried), and its retry answers 200.
func TestConcurrentDuplicatesSendOneEmail(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "carol@example.com", "correct horse battery", "Carol")
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if code, _ := deliver(t, e.h, body); code != 200 && code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 200 or 503", code)
			}
		})
	}
	wg.Wait()
	if code, resp := deliver(t, e.h, body); code != 200 || !resp.Emailed {
		t.Errorf("a retry after the others: %d %+v; want 200, emailed", code, resp)
	}
	if m := len(e.smtp.Messages()); m != 1 {
		t.Errorf("%d emails for one event delivered 10 times at once, want 1", m)
	}
}

// A delivery that claimed the sending and died before it sent leaves the
// claim held until its lease runs out. Its retry finds the claim held and is
// 503, retried again, not acknowledged with the email never sent; once the
// lease has run out (released here), the next retry sends it.
func TestEmailClaimedByADeadDeliveryIsRetried(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "dave@example.com", "correct horse battery", "Dave")
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
	code, stored := deliver(t, e.handler(nil), body) // the notification, stored without its email
	if code != 200 || stored.Emailed {
		t.Fatalf("first delivery: %d %+v", code, stored)
	}
	id, ctx := stored.NotificationID, context.Background()
	claim, claimed, err := e.store.ClaimEmail(ctx, id, notifysvc.EmailLease)
	if err != nil || !claimed {
		t.Fatalf("ClaimEmail = %v, %v", claimed, err) // the dead delivery's claim
	}
	if code, resp := deliver(t, e.h, body); code != http.StatusServiceUnavailable {
		t.Fatalf("the retry under a held claim answered %d %+v; want 503, or the email is never sent", code, resp)
	}
	if err := e.store.ReleaseEmail(ctx, id, claim); err != nil { // the lease runs out
		t.Fatal(err)
	}
	if code, resp := deliver(t, e.h, body); code != 200 || !resp.Emailed {
		t.Fatalf("the retry after the lease: %d %+v; want 200, emailed", code, resp)
	}
	if m := len(e.smtp.Messages()); m != 1 {
		t.Errorf("%d emails, want 1", m)
	}
}

// A failed send is 503 (retried); the redelivery sends the owed email once
// and stores no second notification.
func TestFailedEmailIsRetried(t *testing.T) {
	e := setup(t, true)
	reg := prometheus.NewRegistry()
	h := withShop(e.h, telemetry.NewShop(reg))
	u := userstest.Register(t, e.users, "bob@example.com", "correct horse battery", "Bob")
	body := fntest.Envelope(t, "test", events.OrderPaymentFailed, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.PaymentFailed})
	e.smtp.RefuseRecipients(true)
	if code, _ := deliver(t, h, body); code != http.StatusServiceUnavailable {
		t.Fatalf("failed send answered %d, want 503", code)
	}
	emails(t, reg, 0, 0, 1, 0)
	e.smtp.RefuseRecipients(false)
	code, resp := deliver(t, h, body)
	if code != 200 || !resp.Duplicate || !resp.Emailed {
		t.Fatalf("redelivery: %d %+v", code, resp)
	}
	if code, resp = deliver(t, h, body); code != 200 || !resp.Emailed {
		t.Fatalf("third delivery: %d %+v", code, resp)
	}
	emails(t, reg, 1, 0, 1, 0)
	if n, m := count(t, e.store, u.ID), len(e.smtp.Messages()); n != 1 || m != 1 {
		t.Errorf("%d notifications, %d emails; want 1 and 1", n, m)
	}
}

// An email the server refuses for good (a 5xx to RCPT TO: 550 no such
// mailbox, with or without an enhanced code, or 553 for a non-ASCII address
// at a relay without SMTPUTF8) is
// final: the delivery answers 200 with the notification stored and its email
// recorded undeliverable, and a redelivery makes no SMTP attempt. Until
// 2026-12-06 it answered 503 like a 451: every notification of such an
// account went to the dead letters after MAX_ATTEMPTS and paged on-call
// (DeadLetters), an alert any client could fire with the address it
// registered.
func TestAnEmailRefusedForGoodIsNotRetried(t *testing.T) {
	for _, code := range []string{"550 5.1.1", "553 5.6.7", "550 No such user"} {
		t.Run(code, func(t *testing.T) {
			e := setup(t, true)
			reg := prometheus.NewRegistry()
			h := withShop(e.h, telemetry.NewShop(reg))
			u := userstest.Register(t, e.users, "frank@example.com", "correct horse battery", "Frank")
			body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
			e.smtp.RefuseRecipientsWith(code)
			status, first := deliver(t, h, body)
			if status != 200 || first.Duplicate || first.Emailed || !first.Undeliverable {
				t.Fatalf("a recipient refused with %s answered %d %+v; want 200, not emailed, undeliverable", code, status, first)
			}
			n, err := e.store.Get(context.Background(), first.NotificationID)
			if err != nil {
				t.Fatal(err)
			}
			if n.EmailedAt != nil || n.EmailRefusedAt == nil {
				t.Fatalf("stored notification: emailed at %v, refused at %v; want refused only", n.EmailedAt, n.EmailRefusedAt)
			}
			attempts := len(e.smtp.Helos()) // sessions: a STARTTLS starts a second one
			if attempts == 0 {
				t.Fatal("no SMTP session for the first delivery")
			}
			emails(t, reg, 0, 1, 0, 0)
			e.smtp.RefuseRecipientsWith("") // whatever the server would say now, nothing is asked
			status, second := deliver(t, h, body)
			if status != 200 || !second.Duplicate || second.Emailed || !second.Undeliverable || second.NotificationID != first.NotificationID {
				t.Fatalf("redelivery: %d %+v; want 200, duplicate, undeliverable, the same notification", status, second)
			}
			if c, m := len(e.smtp.Helos()), len(e.smtp.Messages()); c != attempts || m != 0 {
				t.Errorf("the redelivery opened %d SMTP sessions and %d emails went out; want none", c-attempts, m)
			}
			if n := count(t, e.store, u.ID); n != 1 {
				t.Errorf("%d notifications, want 1", n)
			}
			emails(t, reg, 0, 1, 0, 0) // the redelivery counts nothing
		})
	}
}

// A customer registered at an internationalised domain gets the email from a
// relay without SMTPUTF8 (the test server does not offer it): it goes to the
// domain's A-label, recorded sent and counted sent. Only a non-ASCII local
// part, which needs SMTPUTF8, is still refused for good there. Until
// 2026-12-06 both were refused, recorded undeliverable and never sent.
func TestAnInternationalisedDomainIsEmailedWithoutSMTPUTF8(t *testing.T) {
	for _, tt := range []struct {
		address, rcpt string // rcpt: the RCPT TO the relay gets; "" for none
	}{
		{"info@bücherhalle-hamburg.de", "info@xn--bcherhalle-hamburg-m6b.de"},
		{"bób@bücherhalle-hamburg.de", ""},
	} {
		t.Run(tt.address, func(t *testing.T) {
			e := setup(t, true)
			reg := prometheus.NewRegistry()
			h := withShop(e.h, telemetry.NewShop(reg))
			u := userstest.Register(t, e.users, tt.address, "correct horse battery", "Grete")
			body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
			status, resp := deliver(t, h, body)
			if status != 200 || resp.Emailed != (tt.rcpt != "") || resp.Undeliverable != (tt.rcpt == "") {
				t.Fatalf("delivery: %d %+v; want 200, emailed %v", status, resp, tt.rcpt != "")
			}
			n, err := e.store.Get(context.Background(), resp.NotificationID)
			if err != nil {
				t.Fatal(err)
			}
			if (n.EmailedAt != nil) != (tt.rcpt != "") || (n.EmailRefusedAt != nil) != (tt.rcpt == "") {
				t.Errorf("stored notification: emailed at %v, refused at %v", n.EmailedAt, n.EmailRefusedAt)
			}
			msgs := e.smtp.Messages()
			if tt.rcpt == "" {
				if len(msgs) != 0 || e.smtp.Rcpts() != 0 {
					t.Errorf("%d RCPT TO, %d emails; want none", e.smtp.Rcpts(), len(msgs))
				}
				emails(t, reg, 0, 1, 0, 0)
				return
			}
			if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != tt.rcpt {
				t.Fatalf("emails: %+v; want one to %s", msgs, tt.rcpt)
			}
			emails(t, reg, 1, 0, 0, 0)
		})
	}
}

// A refusal whose record times out (the database slow for MarkTimeout)
// answers 503 and releases the claim on a context of its own, so the retry
// right after asks the server again and records the refusal. Until
// 2026-12-06 the release reused the record's context, already ended: it
// failed at once and the claim held the email for its minute's lease, every
// retry meanwhile answering 503.
func TestAFailedRefusalRecordReleasesTheClaim(t *testing.T) {
	e := setup(t, true)
	store := &slowRefusals{Store: e.store, block: true}
	h := New(Deps{Store: store, Users: e.users, Mailer: sender(t, e.smtp, smtptest.Password), Events: fntest.Events(),
		Internal: fntest.Internal(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	u := userstest.Register(t, e.users, "ivan@example.com", "correct horse battery", "Ivan")
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
	e.smtp.RefuseRecipientsWith("550 5.1.1")
	code, _ := deliver(t, h, body)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("a refusal whose record timed out answered %d, want 503", code)
	}
	var claimed *time.Time
	if err := e.pool.QueryRow(context.Background(), `SELECT email_claimed_until FROM notifications WHERE user_id = $1`, u.ID).Scan(&claimed); err != nil {
		t.Fatal(err)
	}
	if claimed != nil {
		t.Fatalf("the claim is held until %v after the failed record; want it released", claimed)
	}
	store.block = false
	code, resp := deliver(t, h, body)
	if code != 200 || !resp.Duplicate || resp.Emailed || !resp.Undeliverable {
		t.Fatalf("the retry right after answered %d %+v; want 200, duplicate, undeliverable", code, resp)
	}
}

// slowRefusals is a store whose MarkRefused, while block is set, waits for
// its context to end: a database that does not answer in time (failing as
// the store does, fault.Unavailable).
type slowRefusals struct {
	*notificationsdb.Store
	block bool
}

func (s *slowRefusals) MarkRefused(ctx context.Context, id uuid.UUID, claim time.Time) (bool, error) {
	if s.block {
		<-ctx.Done()
		return false, fault.Wrap(ctx.Err(), fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	return s.Store.MarkRefused(ctx, id, claim)
}

// A failed send whose release of the claim hangs (a database that does not
// answer) still answers 503, once MarkTimeout has passed: the release runs on
// a context the delivery's end does not cancel, bounded by MarkTimeout. Until
// 66edf08 (2026-12-06) the send-failure path released on
// context.WithoutCancel with no deadline, and a hung database held the
// delivery, and the connector's invocation, for ever.
func TestAHungClaimReleaseDoesNotHoldTheDelivery(t *testing.T) {
	e := setup(t, true)
	store := &hungReleases{Store: e.store, over: make(chan struct{})}
	t.Cleanup(func() { close(store.over) }) // frees a release still waiting when the test fails
	h := New(Deps{Store: store, Users: e.users, Mailer: sender(t, e.smtp, smtptest.Password), Events: fntest.Events(),
		Internal: fntest.Internal(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	u := userstest.Register(t, e.users, "kate@example.com", "correct horse battery", "Kate")
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
	sig := fntest.Sign(body)
	e.smtp.RefuseRecipients(true) // 451: a failed send, the claim released
	start := time.Now()
	answered := make(chan int, 1)
	go func() {
		answered <- fntest.Do(t, h, http.MethodPost, "/", "application/json", body, "X-Internal-Token", credential, "Shop-Signature", sig).Code
	}()
	select {
	case code := <-answered:
		if code != http.StatusServiceUnavailable {
			t.Errorf("a failed send answered %d, want 503", code)
		}
		if took := time.Since(start); took < notifysvc.MarkTimeout {
			t.Errorf("answered after %s, before the release's MarkTimeout (%s): the release did not hang", took, notifysvc.MarkTimeout)
		}
	case <-time.After(notifysvc.MarkTimeout + 10*time.Second):
		t.Fatalf("no answer %s after a failed send whose claim release hangs: the release has no deadline", time.Since(start))
	}
	if n := store.calls.Load(); n != 1 {
		t.Errorf("%d releases, want 1", n)
	}
}

// hungReleases is a store whose ReleaseEmail waits for its context to end,
// as a database that does not answer (failing as the store does,
// fault.Unavailable), or for the test to be over.
type hungReleases struct {
	*notificationsdb.Store
	over  chan struct{}
	calls atomic.Int32
}

func (s *hungReleases) ReleaseEmail(ctx context.Context, id uuid.UUID, claim time.Time) error {
	s.calls.Add(1)
	select {
	case <-ctx.Done():
		return fault.Wrap(ctx.Err(), fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	case <-s.over:
		return errors.New("the test is over")
	}
}

// Every answer carries both email fields, false included, so a reader of
// the connector's logs or a test sees the state either way. Until
// 2026-12-06 "undeliverable" was omitted when false, "emailed" never.
func TestTheAnswerAlwaysCarriesBothEmailFields(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "judy@example.com", "correct horse battery", "Judy")
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
	w := fntest.Do(t, e.h, http.MethodPost, "/", "application/json", body, "X-Internal-Token", credential, "Shop-Signature", fntest.Sign(body))
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
		t.Fatalf("%d %s: %v", w.Code, w.Body, err)
	}
	if got["emailed"] != true || got["undeliverable"] != false {
		t.Errorf("answer %s: want \"emailed\": true and \"undeliverable\": false", w.Body)
	}
}

// withShop serves h with the shop's metrics m in every request's context, as
// fnserve does.
func withShop(h http.Handler, m *telemetry.Shop) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(telemetry.WithShop(r.Context(), m)))
	})
}

// emails checks shop_notification_emails_total on reg: sent, refused,
// failed and unanswered so far.
func emails(t *testing.T, reg *prometheus.Registry, sent, refused, failed, unanswered int) {
	t.Helper()
	const name = "shop_notification_emails_total"
	want := fmt.Sprintf("# HELP %[1]s Notification emails notify-user tried to send, by outcome: sent, refused (the mail server refused the recipient for good: recorded, never retried), failed (retried) or unanswered (the mail server had the whole message but never answered: it may have gone out, recorded sent, never retried).\n# TYPE %[1]s counter\n"+
		"%[1]s{outcome=\"failed\"} %[4]d\n%[1]s{outcome=\"refused\"} %[3]d\n%[1]s{outcome=\"sent\"} %[2]d\n%[1]s{outcome=\"unanswered\"} %[5]d\n", name, sent, refused, failed, unanswered)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), name); err != nil {
		t.Error(err)
	}
}

// A captured, correctly signed event replayed after the inbox retention
// (its processed-event record pruned, so the inbox would not know it) is
// refused 422 event_expired and changes nothing: no notification, no email.
// One just inside the window is processed. Until 2026-12-06 its time was not
// checked, and the replay notified (and emailed) again.
func TestASignedEventPastTheInboxRetentionHasNoEffect(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "heidi@example.com", "correct horse battery", "Heidi")
	at := func(age time.Duration) string {
		env, err := events.New(context.Background(), "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
		if err != nil {
			t.Fatal(err)
		}
		env.Time = time.Now().Add(-age).UTC()
		b, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if code, _ := deliver(t, e.h, at(inbox.DefaultRetention+time.Hour)); code != http.StatusUnprocessableEntity {
		t.Fatalf("an event past the inbox retention answered %d, want 422", code)
	}
	if n, m := count(t, e.store, u.ID), len(e.smtp.Messages()); n != 0 || m != 0 {
		t.Fatalf("the refused event left %d notifications and %d emails, want none", n, m)
	}
	code, resp := deliver(t, e.h, at(inbox.DefaultRetention-inbox.MaxClockSkew-time.Minute))
	if code != 200 || resp.Duplicate || !resp.Emailed {
		t.Fatalf("an event just inside the window answered %d %+v, want 200, emailed", code, resp)
	}
	if n := count(t, e.store, u.ID); n != 1 {
		t.Errorf("%d notifications, want 1", n)
	}
}

// A dead letter replayed after the relay pruned its inbox record (past
// INBOX_RETENTION) is claimed anew and finds its notification stored: it is a
// duplicate, which sends the email still owed, once, and answers 200; its
// email sent already, it sends nothing. Until 2026-12-05 such a claim
// answered 503 on every delivery, back to the dead letters: the email of an
// event whose sends had all failed was never sent.
func TestADeadLetterReplayedPastItsInboxRecordSendsTheEmailOwedOnce(t *testing.T) {
	for _, tt := range []struct {
		name     string
		smtpDown bool
	}{{"email owed", true}, {"email sent", false}} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, true)
			u := userstest.Register(t, e.users, "grace@example.com", "correct horse battery", "Grace")
			body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
			e.smtp.RefuseRecipients(tt.smtpDown)
			code, first := deliver(t, e.h, body)
			if want := map[bool]int{true: http.StatusServiceUnavailable, false: 200}[tt.smtpDown]; code != want {
				t.Fatalf("first delivery answered %d, want %d", code, want)
			}
			e.smtp.RefuseRecipients(false)
			// The relay prunes the inbox record; the dead letter is replayed.
			if _, err := e.pool.Exec(context.Background(), `DELETE FROM processed_events WHERE consumer = $1`, Consumer); err != nil {
				t.Fatal(err)
			}
			code, replay := deliver(t, e.h, body)
			if code != 200 || !replay.Duplicate || !replay.Emailed {
				t.Fatalf("the replay answered %d %+v; want 200, duplicate, emailed", code, replay)
			}
			if !tt.smtpDown && replay.NotificationID != first.NotificationID {
				t.Errorf("the replay answered notification %s, want the first delivery's %s", replay.NotificationID, first.NotificationID)
			}
			if n, m := count(t, e.store, u.ID), len(e.smtp.Messages()); n != 1 || m != 1 {
				t.Errorf("%d notifications, %d emails; want 1 and 1", n, m)
			}
		})
	}
}

// A wrong SMTP password is 503 (the connector retries), nothing is marked
// sent and the claim is released: once the password is fixed, the
// redelivery sends the email owed, once.
func TestWrongSMTPPasswordIsRetriedAndNothingMarkedSent(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "dave@example.com", "correct horse battery", "Dave")
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
	wrong := e.handler(sender(t, e.smtp, "not-the-password"))
	if code, _ := deliver(t, wrong, body); code != http.StatusServiceUnavailable {
		t.Fatalf("a refused SMTP login answered %d, want 503", code)
	}
	if e.smtp.AuthFailures() != 1 || len(e.smtp.Messages()) != 0 {
		t.Fatalf("%d refused logins, %d emails; want 1 and 0", e.smtp.AuthFailures(), len(e.smtp.Messages()))
	}
	items, _, err := e.store.List(context.Background(), u.ID, uuid.Nil, 10)
	if err != nil || len(items) != 1 {
		t.Fatalf("notifications %v, %v; want 1", items, err)
	}
	if items[0].EmailedAt != nil {
		t.Fatalf("the notification is marked emailed at %v after a refused login", items[0].EmailedAt)
	}
	code, resp := deliver(t, e.h, body) // the redelivery, password fixed
	if code != 200 || !resp.Duplicate || !resp.Emailed {
		t.Fatalf("redelivery: %d %+v", code, resp)
	}
	if n, m := count(t, e.store, u.ID), len(e.smtp.Messages()); n != 1 || m != 1 {
		t.Errorf("%d notifications, %d emails; want 1 and 1", n, m)
	}
}

// cancelAfterSend is a Mailer that cancels the delivery's context as soon as
// the server accepted the message: the connector stopping (SIGTERM cancels
// the invocations in flight) or the invocation's deadline at that moment.
type cancelAfterSend struct {
	notifysvc.Mailer
	cancel context.CancelFunc
}

func (m cancelAfterSend) Send(ctx context.Context, e notifications.Email) error {
	err := m.Mailer.Send(ctx, e)
	m.cancel()
	return err
}

// An email the server accepted is recorded sent even when the delivery's
// context ends right after: the redelivery sends nothing. Until 2026-12-03
// the record was written on the ended context and failed, and once the
// claim's minute had run out the redelivery sent the email again.
func TestAnEmailAcceptedAsTheDeliveryEndsIsRecordedSent(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "erin@example.com", "correct horse battery", "Erin")
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ending := e.handler(cancelAfterSend{Mailer: sender(t, e.smtp, smtptest.Password), cancel: cancel})
	code, _ := deliver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ending.ServeHTTP(w, r.WithContext(ctx))
	}), body)
	t.Logf("the delivery whose context ended answered %d", code)
	if m := len(e.smtp.Messages()); m != 1 {
		t.Fatalf("%d emails accepted, want 1", m)
	}
	items, _, err := e.store.List(context.Background(), u.ID, uuid.Nil, 10)
	if err != nil || len(items) != 1 {
		t.Fatalf("notifications %v, %v; want 1", items, err)
	}
	if items[0].EmailedAt == nil {
		t.Errorf("the accepted email is not recorded sent: a redelivery after the claim's lease sends it again")
	}
	if code, resp := deliver(t, e.h, body); code != 200 || !resp.Duplicate || !resp.Emailed {
		t.Errorf("redelivery: %d %+v; want 200, duplicate, emailed", code, resp)
	}
	if m := len(e.smtp.Messages()); m != 1 {
		t.Errorf("%d emails, want 1", m)
	}
}

// A delivery whose context ends after the relay has the whole message but
// before it answers the final dot (the connector's INVOKE_TIMEOUT or SIGTERM
// while a relay scans the content) still waits, within SMTP_TIMEOUT, for the
// answer and records the email sent: the redelivery sends nothing. Until
// 2026-12-06 the cancel cut the conversation there, the claim was released
// and the redelivery sent a second email.
func TestACancelWhileTheRelayAnswersTheMessageSendsOneEmail(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "gwen@example.com", "correct horse battery", "Gwen")
	body := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed})
	e.smtp.SlowMessageAnswers(2 * time.Second) // SMTP_TIMEOUT is 5 s
	code, _ := deliver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		e.h.ServeHTTP(w, r.WithContext(ctx))
	}), body)
	t.Logf("the delivery whose context ended answered %d", code)
	e.smtp.SlowMessageAnswers(0)
	if code, resp := deliver(t, e.h, body); code != 200 || !resp.Duplicate || !resp.Emailed {
		t.Errorf("redelivery: %d %+v; want 200, duplicate, emailed", code, resp)
	}
	if m := len(e.smtp.Messages()); m != 1 {
		t.Errorf("%d emails for one event, want 1", m)
	}
}

// A message the relay has in full but never answered within SMTP_TIMEOUT
// may have gone out: it is recorded sent (at most once), so no redelivery
// ever sends it again, and the order's other email is not held behind it. A
// cancellation's unanswered send answers 200, emailed; the placing's
// delivery then answers 200 at once without sending ("confirmed" never
// follows "cancelled"), and the cancellation's redelivery sends nothing.
// Until 2026-12-06 the claim was released and the redelivery, at once, sent
// a second email; until 2026-12-08 the claim was kept for its minute: the
// placing's deliveries answered 503 meanwhile, and after it both emails
// could go, the cancellation's twice.
func TestAnUnansweredMessageIsNeverSentTwice(t *testing.T) {
	e := setup(t, true)
	u := userstest.Register(t, e.users, "hal@example.com", "correct horse battery", "Hal")
	order := uuid.New()
	placed := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: order, UserID: u.ID, Status: orders.Confirmed})
	ended := fntest.Envelope(t, "test", events.OrderCancelled, "", orders.EventData{OrderID: order, UserID: u.ID, Status: orders.Cancelled})
	if code, _ := deliver(t, e.handler(nil), placed); code != 200 { // stored, its email owed
		t.Fatalf("placed: %d", code)
	}
	s, err := smtpmail.New(smtpmail.Config{Addr: e.smtp.Addr, From: "shop@example.com", Username: smtptest.Username,
		Password: smtptest.Password, RootCAs: e.smtp.RootCAs, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.smtp.SlowMessageAnswers(2 * time.Second) // beyond SMTP_TIMEOUT
	reg := prometheus.NewRegistry()
	if code, resp := deliver(t, withShop(e.handler(s), telemetry.NewShop(reg)), ended); code != 200 || !resp.Emailed {
		t.Fatalf("the unanswered delivery: %d %+v, want 200, emailed (recorded sent)", code, resp)
	}
	emails(t, reg, 0, 0, 0, 1) // counted unanswered (until 2026-12-08, nothing)
	e.smtp.SlowMessageAnswers(0)
	if code, resp := deliver(t, e.h, placed); code != 200 || resp.Emailed {
		t.Errorf("placed, redelivered after the end's unanswered send: %d %+v, want 200 with no email", code, resp)
	}
	if code, resp := deliver(t, e.h, ended); code != 200 || !resp.Duplicate || !resp.Emailed {
		t.Errorf("the end, redelivered: %d %+v, want 200, duplicate, emailed", code, resp)
	}
	if m := len(e.smtp.Messages()); m != 1 {
		t.Errorf("%d emails for the order, want 1 (the cancellation's, once)", m)
	}
}

// A configuration that would send the SMTP password in plain text to
// another machine stops the function at start, before any event.
func TestPlaintextSMTPAuthToRemoteHostRefusedAtStart(t *testing.T) {
	secrets := t.TempDir()
	for name, value := range map[string]string{"internal-callers": authtest.VerifierText(), "smtp-password": "s3cret-smtp-password",
		"event-verify-key": fntest.VerifyKey()} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"SECRETS_DIR": secrets, "USERS_DATABASE_URL": pgtest.NewDatabase(t), "SMTP_ADDR": "smtp.example.com:25",
		"SMTP_USERNAME": "shop", "SMTP_TLS": "none", "SMTP_ALLOW_PLAINTEXT_AUTH": "true"}
	_, err := Build(config.New(config.Env(env)), slog.Default())
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Build = %v, want a refusal of a password in plain text to a remote host", err)
	}
	if strings.Contains(err.Error(), "s3cret-smtp-password") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	e := setup(t, false)
	user := uuid.New()
	good := fntest.Envelope(t, "test", events.OrderCancelled, "", orders.EventData{OrderID: uuid.New(), UserID: user})
	tests := []struct {
		name   string
		body   string
		header []string
		want   int
	}{
		{"no credential", good, nil, 401},
		{"wrong credential", good, []string{"X-Internal-Token", credential + "x"}, 401},
		{"another caller's valid credential", good, []string{"X-Internal-Token", fntest.Caller("recover-orders")}, 403},
		{"malformed", `not json`, []string{"X-Internal-Token", credential}, 400},
		{"missing id", `{"specversion":"1.0","source":"s","type":"order.placed.v1","data":{}}`, []string{"X-Internal-Token", credential}, 400},
		{"no user", fntest.Envelope(t, "test", events.OrderPlaced, "", map[string]string{"order_id": uuid.NewString()}), []string{"X-Internal-Token", credential}, 400},
		{"data not an object", fntest.Envelope(t, "test", events.OrderPlaced, "", "text"), []string{"X-Internal-Token", credential}, 400},
		{"unsubscribed type", fntest.Envelope(t, "test", events.StockChanged, "", map[string]string{}), []string{"X-Internal-Token", credential}, 422},
		{"unsigned", good, []string{"X-Internal-Token", credential, "Shop-Signature", ""}, 403},
		{"signature of another event", good, []string{"X-Internal-Token", credential, "Shop-Signature", fntest.Sign(`{}`)}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if len(header) == 2 { // the connector passes on the relay's signature
				header = append(header, "Shop-Signature", fntest.Sign(tt.body))
			}
			w := fntest.Do(t, e.h, http.MethodPost, "/", "application/json", tt.body, header...)
			if w.Code != tt.want {
				t.Errorf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
		})
	}
	// Every caller but the RabbitMQ connector, with the genuine signature.
	fntest.RefusesOtherCallers(t, e.h, "notify-user", good, "Shop-Signature", fntest.Sign(good))
	if n := count(t, e.store, user); n != 0 {
		t.Errorf("a refused delivery stored %d notifications", n)
	}
}

// Every email log line names the account (user_id) beside the masked address,
// so that the runbook's step "many accounts with bad addresses"
// (docs/runbooks/notification-emails.md) finds the registrations behind the
// refusals. Until 2026-12-07 "email refused for good", "email not sent" and
// "email sent" carried only the masked address and the notification id.
func TestEmailLogLinesNameTheUser(t *testing.T) {
	e := setup(t, true)
	var mu sync.Mutex
	var buf strings.Builder
	h := New(Deps{Store: e.store, Users: e.users, Mailer: sender(t, e.smtp, smtptest.Password), Events: fntest.Events(),
		Internal: fntest.Internal(), Log: slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))})
	u := userstest.Register(t, e.users, "grace@example.com", "correct horse battery", "Grace")
	deliverOrder := func(refuse string) {
		t.Helper()
		e.smtp.RefuseRecipientsWith(refuse)
		deliver(t, h, fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: uuid.New(), UserID: u.ID, Status: orders.Confirmed}))
	}
	deliverOrder("550 5.1.1") // refused for good
	deliverOrder("451 4.3.0") // not sent, retried
	deliverOrder("")          // sent
	mu.Lock()
	defer mu.Unlock()
	lines := map[string]map[string]any{}
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines[fmt.Sprint(rec["msg"])] = rec
	}
	for _, msg := range []string{"email refused for good: not sent, not retried", "email not sent", "email sent"} {
		rec, ok := lines[msg]
		if !ok {
			t.Errorf("no %q line in\n%s", msg, buf.String())
			continue
		}
		if rec["user_id"] != u.ID.String() {
			t.Errorf("%q line: user_id %v, want %s: %v", msg, rec["user_id"], u.ID, rec)
		}
	}
}

// lockedWriter serialises writes to w under mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// An order's emails never go out backwards: the email of its placing, owed
// after a failed send, is not sent once the email of its end (a
// cancellation, or a failed payment) has gone out, which the connector's
// retries let happen (the placing's delivery waits in a retry queue while
// the cancellation's goes through). The placing's notification stays
// recorded, its email unsent, and its redelivery answers 200. Until
// 2026-12-07 the customer got "cancelled" first, then "confirmed".
func TestAnOrdersPlacingIsNotEmailedAfterItsEnd(t *testing.T) {
	for _, end := range []string{events.OrderCancelled, events.OrderPaymentFailed} {
		t.Run(end, func(t *testing.T) {
			e := setup(t, true)
			u := userstest.Register(t, e.users, "ivan@example.com", "correct horse battery", "Ivan")
			order := uuid.New()
			placed := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: order, UserID: u.ID, Status: orders.Confirmed})
			ended := fntest.Envelope(t, "test", end, "", orders.EventData{OrderID: order, UserID: u.ID, Status: orders.Cancelled})
			e.smtp.RefuseRecipients(true)
			if code, _ := deliver(t, e.h, placed); code != http.StatusServiceUnavailable {
				t.Fatalf("placed, SMTP refusing: %d, want 503", code)
			}
			e.smtp.RefuseRecipients(false)
			if code, resp := deliver(t, e.h, ended); code != 200 || !resp.Emailed {
				t.Fatalf("the end: %d %+v", code, resp)
			}
			code, resp := deliver(t, e.h, placed)
			if code != 200 || resp.Emailed || resp.Undeliverable {
				t.Errorf("placed, redelivered after the end's email: %d %+v, want 200 with no email", code, resp)
			}
			if n, m := count(t, e.store, u.ID), len(e.smtp.Messages()); n != 2 || m != 1 {
				t.Errorf("%d notifications, %d emails; want 2 and 1 (the end's)", n, m)
			}
		})
	}
}

// An order's two emails are never sent at once, so never backwards: while the
// email of its end is being sent (its delivery holds the claim), the
// placing's redelivery sends nothing and answers 503, and once the end's went
// out it answers 200 without sending; while the placing's email is being
// sent, the end's delivery answers 503 and sends its email after. Until
// 2026-12-07 the placing's redelivery checked the end only before claiming
// its own email and sent "confirmed" beside a "cancelled" in flight.
func TestAnOrdersEmailsAreNeverSentAtOnce(t *testing.T) {
	e := setup(t, true)
	stored := e.handler(nil) // deliveries that store the notification, its email owed
	ctx := context.Background()
	u := userstest.Register(t, e.users, "judy@example.com", "correct horse battery", "Judy")

	order := uuid.New()
	placed := fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: order, UserID: u.ID, Status: orders.Confirmed})
	ended := fntest.Envelope(t, "test", events.OrderCancelled, "", orders.EventData{OrderID: order, UserID: u.ID, Status: orders.Cancelled})
	if code, _ := deliver(t, stored, placed); code != 200 {
		t.Fatalf("placed: %d", code)
	}
	_, end := deliver(t, stored, ended)
	if _, ok, err := e.store.ClaimEmail(ctx, end.NotificationID, notifysvc.EmailLease); err != nil || !ok {
		t.Fatalf("the end's claim = %v, %v", ok, err) // its delivery is sending it
	}
	if code, resp := deliver(t, e.h, placed); code != http.StatusServiceUnavailable || resp.Emailed {
		t.Errorf("placed, redelivered while the end's email is sent: %d %+v, want 503", code, resp)
	}
	if err := e.store.MarkEmailed(ctx, end.NotificationID); err != nil { // the end's went out
		t.Fatal(err)
	}
	if code, resp := deliver(t, e.h, placed); code != 200 || resp.Emailed {
		t.Errorf("placed, redelivered after the end's email: %d %+v, want 200 with no email", code, resp)
	}
	if m := len(e.smtp.Messages()); m != 0 {
		t.Errorf("%d emails of the placing, want none", m)
	}

	order = uuid.New()
	placed = fntest.Envelope(t, "test", events.OrderPlaced, "", orders.EventData{OrderID: order, UserID: u.ID, Status: orders.Confirmed})
	ended = fntest.Envelope(t, "test", events.OrderCancelled, "", orders.EventData{OrderID: order, UserID: u.ID, Status: orders.Cancelled})
	_, place := deliver(t, stored, placed)
	claim, ok, err := e.store.ClaimEmail(ctx, place.NotificationID, notifysvc.EmailLease)
	if err != nil || !ok {
		t.Fatalf("the placing's claim = %v, %v", ok, err) // its delivery is sending it
	}
	if code, resp := deliver(t, e.h, ended); code != http.StatusServiceUnavailable || resp.Emailed {
		t.Errorf("the end, delivered while the placing's email is sent: %d %+v, want 503", code, resp)
	}
	if err := e.store.ReleaseEmail(ctx, place.NotificationID, claim); err != nil { // that send failed
		t.Fatal(err)
	}
	for _, body := range []string{placed, ended} {
		if code, resp := deliver(t, e.h, body); code != 200 || !resp.Emailed {
			t.Errorf("redelivered: %d %+v, want 200, emailed", code, resp)
		}
	}
	msgs := e.smtp.Messages()
	if len(msgs) != 2 || !strings.Contains(msgs[0].Data, "is confirmed") || !strings.Contains(msgs[1].Data, "was cancelled") {
		t.Errorf("%d emails, want the placing's then the end's", len(msgs))
	}
}
