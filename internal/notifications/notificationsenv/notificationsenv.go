// Package notificationsenv builds the dependencies of the notifications
// functions (notify-user, list-notifications) from their configuration.
// Notifications live in the users database, next to the accounts they are
// for. Every problem is collected before failing.
//
// Configuration: the users database (postgres.ConfigFrom: USERS_…); secret
// jwt-verify-key for Needs.Tokens; secret internal-callers for Needs.Internal;
// secret event-verify-key, EVENT_ACCEPT_UNSIGNED and INBOX_RETENTION (the
// window of events accepted, the relay's setting too, and recorded in the
// users database for it, inbox.RecordRetention) for Needs.Events;
// SMTP_* (smtpmail.ConfigFrom) for Needs.Mail, where an empty SMTP_ADDR
// means no mail is sent.
package notificationsenv

import (
	"context"
	"errors"
	"log/slog"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/notifications/notificationsdb"
	"github.com/shopfaas/shop/internal/notifications/smtpmail"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

// Needs says which optional dependencies a function uses.
type Needs struct {
	Tokens   bool // verifies access tokens: the jwt-verify-key secret
	Internal bool // checks internal callers: the internal-callers secret
	Mail     bool // sends mail when SMTP_ADDR is set
	// Events: the function consumes events and checks the relay's signature
	// (the event-verify-key secret, inbox.EventsConfigFrom), as Consumer.
	Events bool
	// Consumer is the function's name in the inbox (the one it claims
	// events with), required with Events: the build records its
	// INBOX_RETENTION under it (inbox.RecordRetention), so that the outbox
	// relay keeps the records of the events it still accepts.
	Consumer string
}

// Deps are a notifications function's dependencies. Fields a function does
// not need are zero; Mailer is also nil when SMTP_ADDR is empty.
type Deps struct {
	Store  *notificationsdb.Store
	Users  *usersdb.Store
	Tokens *auth.Verifier
	// Internal verifies internal callers, set with Needs.Internal.
	Internal *auth.InternalVerifier
	Mailer   *smtpmail.Sender
	// Events reads signed events, set with Needs.Events.
	Events inbox.Events
}

// Load reads the configuration from c (every problem reported at once), then
// connects to and migrates the users database within postgres.OpenTimeout
// and, for Needs.Events, records the consumer's INBOX_RETENTION there
// (inbox.RecordRetention): a failure fails the build.
func Load(ctx context.Context, c *config.Reader, log *slog.Logger, needs Needs) (*Deps, error) {
	dbc := postgres.ConfigFrom(c, "users", usersdb.Migrations())
	dbc.Log = log // a migration retry's warning names this function (on faasd CE, the member)
	callers := auth.CallersFrom(c, needs.Tokens, needs.Internal)
	d := &Deps{}
	var mc smtpmail.Config
	if needs.Mail {
		mc = smtpmail.ConfigFrom(c)
	}
	var ec inbox.EventsConfig
	if needs.Events {
		if needs.Consumer == "" {
			return nil, errors.New("notificationsenv: a function that consumes events (Needs.Events) needs its name in the inbox (Needs.Consumer)")
		}
		ec = inbox.EventsConfigFrom(c)
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	var err error
	if needs.Events {
		if d.Events, err = ec.Events(log); err != nil {
			return nil, err
		}
	}
	if d.Tokens, err = callers.Verifier(); err != nil {
		return nil, err
	}
	if d.Internal, err = callers.InternalVerifier(); err != nil {
		return nil, err
	}
	if needs.Mail && mc.Addr != "" {
		if d.Mailer, err = smtpmail.New(mc); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, postgres.OpenTimeout)
	defer cancel()
	pool, err := postgres.Open(ctx, dbc)
	if err != nil {
		return nil, err
	}
	// Last, once nothing else can fail the build (and before any event is
	// read): a build that fails records nothing the relay would prune with.
	if needs.Events {
		w, err := inbox.RecordRetention(ctx, pool, needs.Consumer, ec.Retention)
		if err != nil {
			pool.Close()
			return nil, err
		}
		d.Events = d.Events.Since(w)
	}
	d.Store, d.Users = notificationsdb.New(pool), usersdb.New(pool)
	return d, nil
}
