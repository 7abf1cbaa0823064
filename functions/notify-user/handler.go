// Package function is notify-user, an event handler (topics
// user.registered.v1, order.placed.v1, order.cancelled.v1 and
// order.payment_failed.v1; POST / from the RabbitMQ connector with the
// internal credential): it stores one notification per event for the user it
// concerns (GET /users/me/notifications lists them) and, when SMTP_ADDR is
// configured, emails it to the account's address. See docs/events.md.
//
// Configuration: USERS_DATABASE_URL, DATABASE_CREATE, DATABASE_MAX_CONNS,
// optional secret db-password-users; secret internal-callers; the mail settings of
// smtpmail.ConfigFrom: SMTP_ADDR (host:port, optional: no email without it),
// SMTP_FROM, SMTP_USERNAME with secret smtp-password, SMTP_TLS,
// SMTP_ALLOW_PLAINTEXT_AUTH, SMTP_TIMEOUT.
package function

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/notifications/notificationsenv"
	"github.com/shopfaas/shop/internal/notifications/notifysvc"
)

// Consumer is this function's name in the inbox.
const Consumer = "notify-user"

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := notificationsenv.Load(context.Background(), c, log, notificationsenv.Needs{Internal: true, Mail: true, Events: true, Consumer: Consumer})
	if err != nil {
		return nil, err
	}
	deps := Deps{Store: d.Store, Users: d.Users, Events: d.Events, Internal: d.Internal, Log: log}
	if d.Mailer != nil { // a nil *smtpmail.Sender in the interface would not be nil
		deps.Mailer = d.Mailer
	}
	return New(deps), nil
}

// Deps are notify-user's dependencies.
type Deps struct {
	Store notifysvc.Store
	Users notifysvc.Accounts
	// Mailer is nil when no SMTP server is configured: notifications are
	// then only stored.
	Mailer notifysvc.Mailer
	// Events reads the connector's deliveries, checking the relay's signature.
	Events inbox.Events
	// Internal verifies the internal callers (the RabbitMQ connector).
	Internal *auth.InternalVerifier
	Log      *slog.Logger
}

// Response is the answer to a delivery.
type Response struct {
	EventID        uuid.UUID `json:"event_id"`
	Duplicate      bool      `json:"duplicate"`
	NotificationID uuid.UUID `json:"notification_id"`
	// Emailed is true when the notification's email has gone out (now or on
	// an earlier delivery).
	Emailed bool `json:"emailed"`
	// Undeliverable is true when the mail server refused the email for good
	// (now or on an earlier delivery): it is never sent, and the delivery is
	// done all the same.
	Undeliverable bool `json:"undeliverable"`
}

// New returns the handler. It answers 200 only after the notification is
// committed (and, with a Mailer, its email sent): a failed send is 503 and the
// redelivery sends the email still owed without storing a second
// notification (notifysvc.Service.Notify); an email the server refuses for
// good is 200, undeliverable, and never tried again. Events it can never
// process are 4xx.
func New(d Deps) http.Handler {
	svc := notifysvc.New(d.Store, d.Users, d.Mailer, d.Log)
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, d.Internal, "notify-user"); err != nil {
			return err
		}
		ev, err := d.Events.Read(r, notifications.Types...)
		if err != nil {
			return err
		}
		var e notifications.Event // user_id and order_id from the data
		if err := ev.DecodeData(&e); err != nil {
			return err
		}
		e.ID, e.Type = ev.EventID, ev.Type
		res, err := svc.Notify(ev.Context(r.Context()), Consumer, e, time.Now())
		if err != nil {
			return err
		}
		return fnhttp.JSON(w, http.StatusOK, Response{EventID: ev.EventID, Duplicate: res.Duplicate, NotificationID: res.Notification.ID, Emailed: res.Emailed, Undeliverable: res.Undeliverable})
	}))
	return fnhttp.Routes(mux)
}
