// Package function is notify-user, an event handler (topics
// user.registered.v1, order.placed.v1, order.cancelled.v1 and
// order.payment_failed.v1; POST / from the RabbitMQ connector with the
// internal credential): it stores one notification per event for the user it
// concerns (GET /users/me/notifications lists them) and, when SMTP_ADDR is
// configured, emails it to the account's address. See docs/events.md.
//
// Configuration: USERS_DATABASE_URL, DATABASE_CREATE, DATABASE_MAX_CONNS,
// optional secret db-password; secret internal-token; the mail settings of
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
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/notifications/notificationsdb"
	"github.com/shopfaas/shop/internal/notifications/notificationsenv"
	"github.com/shopfaas/shop/internal/notifications/smtpmail"
	"github.com/shopfaas/shop/internal/users"
)

// Consumer is this function's name in the inbox.
const Consumer = "notify-user"

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := notificationsenv.Load(context.Background(), c, log, notificationsenv.Needs{Internal: true, Mail: true})
	if err != nil {
		return nil, err
	}
	return New(Deps{Store: d.Store, Users: d.Users, Mailer: mailer(d.Mailer), Credential: d.InternalToken, Log: log}), nil
}

// mailer keeps "no SMTP server" a nil Mailer: an interface holding a nil
// *smtpmail.Sender would not be nil.
func mailer(s *smtpmail.Sender) Mailer {
	if s == nil {
		return nil
	}
	return s
}

// Accounts finds a user's account (for the email address); usersdb.Store
// implements it.
type Accounts interface {
	Get(ctx context.Context, id uuid.UUID) (users.User, error)
}

// Mailer sends one email; smtpmail.Sender implements it. An error means the
// email may not have been delivered.
type Mailer interface {
	Send(ctx context.Context, e notifications.Email) error
}

// Deps are notify-user's dependencies.
type Deps struct {
	Store *notificationsdb.Store
	Users Accounts
	// Mailer is nil when no SMTP server is configured: notifications are
	// then only stored.
	Mailer Mailer
	// Credential is the internal credential callers must present.
	Credential string
	Log        *slog.Logger
}

// Response is the answer to a delivery.
type Response struct {
	EventID        uuid.UUID `json:"event_id"`
	Duplicate      bool      `json:"duplicate"`
	NotificationID uuid.UUID `json:"notification_id"`
	// Emailed is true when the notification's email has gone out (now or on
	// an earlier delivery).
	Emailed bool `json:"emailed"`
}

// eventData is what notify-user reads of its events' data: user.registered.v1
// (users.Registered) and the order events (orders.EventData) both carry
// user_id; the order events carry order_id.
type eventData struct {
	UserID  uuid.UUID `json:"user_id"`
	OrderID uuid.UUID `json:"order_id"`
}

// New returns the handler. It answers 200 only after the notification is
// committed (and, with a Mailer, its email sent): a failed send is 503 and the
// redelivery sends the email still owed without storing a second
// notification. Events it can never process are 4xx.
func New(d Deps) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if err := auth.CheckInternal(r, d.Credential); err != nil {
			return err
		}
		ev, err := inbox.ReadDelivery(r, notifications.Types...)
		if err != nil {
			return err
		}
		ctx := ev.Context(r.Context())
		var data eventData
		if err := ev.DecodeData(&data); err != nil {
			return err
		}
		n, err := notifications.New(notifications.Event{ID: ev.EventID, Type: ev.Type, UserID: data.UserID, OrderID: data.OrderID}, time.Now())
		if err != nil {
			return err
		}
		stored, first, err := d.Store.Record(ctx, Consumer, n)
		if err != nil {
			return err
		}
		if !first {
			d.Log.InfoContext(ctx, "duplicate event", "event_id", ev.EventID, "type", ev.Type)
		} else {
			d.Log.InfoContext(ctx, "event processed", "event_id", ev.EventID, "type", ev.Type, "notification_id", stored.ID)
		}
		emailed := stored.EmailedAt != nil
		if d.Mailer != nil && !emailed {
			if emailed, err = email(ctx, d, stored); err != nil {
				return err
			}
		}
		return fnhttp.JSON(w, http.StatusOK, Response{EventID: ev.EventID, Duplicate: !first, NotificationID: stored.ID, Emailed: emailed})
	}))
	return fnhttp.Routes(mux)
}

// emailLease bounds how long a delivery may hold the sending of an email
// before another may take it over: above the longest send
// (smtpmail.MaxTimeout).
const emailLease = time.Minute

// email sends n to its user's address and records it. A deleted account is
// no error (nothing to send, reported false); a failed send is
// fault.Unavailable so the connector retries.
func email(ctx context.Context, d Deps, n notifications.Notification) (bool, error) {
	u, err := d.Users.Get(ctx, n.UserID)
	if fault.Is(err, fault.NotFound, "") {
		d.Log.InfoContext(ctx, "no account to email", "user_id", n.UserID, "notification_id", n.ID)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	claimed, err := d.Store.ClaimEmail(ctx, n.ID, emailLease)
	if err != nil {
		return false, err
	}
	if !claimed {
		// Sent already, or another delivery of the same event is sending it
		// right now (and is retried itself if it fails).
		return false, nil
	}
	if err := d.Mailer.Send(ctx, n.Email(u.Email)); err != nil {
		d.Log.WarnContext(ctx, "email not sent", "to", notifications.MaskEmail(u.Email), "notification_id", n.ID, "err", err.Error())
		_ = d.Store.ReleaseEmail(context.WithoutCancel(ctx), n.ID)
		return false, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "the email could not be sent")
	}
	if err := d.Store.MarkEmailed(ctx, n.ID); err != nil {
		return true, err
	}
	d.Log.InfoContext(ctx, "email sent", "to", notifications.MaskEmail(u.Email), "notification_id", n.ID)
	return true, nil
}
