package notificationsenv_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/notifications/notificationsenv"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// Load names every missing setting at once and builds every dependency asked
// for.
func TestLoad(t *testing.T) {
	load := func(needs notificationsenv.Needs) func(*config.Reader) (*notificationsenv.Deps, error) {
		return func(c *config.Reader) (*notificationsenv.Deps, error) {
			return notificationsenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), needs)
		}
	}
	db := pgtest.NewDatabase(t)
	configtest.Run(t, configtest.Case[*notificationsenv.Deps]{
		Name: "with events", Load: load(notificationsenv.Needs{Tokens: true, Internal: true, Mail: true, Events: true, Consumer: "test-consumer"}),
		Missing: []string{"USERS_DATABASE_URL", "jwt-verify-key", "internal-callers", "event-verify-key"},
		Env:     map[string]string{"USERS_DATABASE_URL": db, "SMTP_ADDR": "127.0.0.1:2525", "INBOX_RETENTION": "1440h"},
		Secrets: map[string]string{"jwt-verify-key": configtest.CallerSecrets["jwt-verify-key"],
			"internal-callers": configtest.CallerSecrets["internal-callers"], "event-verify-key": configtest.VerifyKey(t)},
		// The consumer's retention, recorded for the outbox relay
		// (inbox.RecordRetention).
		Check: func(t *testing.T, d *notificationsenv.Deps) {
			got, err := inbox.RecordedRetentions(context.Background(), pgtest.Connect(t, db))
			if diff := cmp.Diff([]inbox.Recorded{{Consumer: "test-consumer", Retention: 60 * 24 * time.Hour}}, got); diff != "" || err != nil {
				t.Errorf("retentions recorded (%v; -want +got):\n%s", err, diff)
			}
		},
	}, configtest.Case[*notificationsenv.Deps]{
		Name: "with mail", Load: load(notificationsenv.Needs{Tokens: true, Internal: true, Mail: true}),
		Env:     map[string]string{"USERS_DATABASE_URL": db, "SMTP_ADDR": "127.0.0.1:2525"},
		Secrets: configtest.CallerSecrets,
		Check: func(t *testing.T, d *notificationsenv.Deps) {
			if d.Store == nil || d.Users == nil || d.Tokens == nil || d.Internal == nil || d.Mailer == nil {
				t.Errorf("deps %+v: want every dependency", d)
			}
		},
	})
}

// A function that consumes events names itself in the inbox: its build
// records its retention under that name.
func TestAConsumerNamesItself(t *testing.T) {
	_, err := notificationsenv.Load(context.Background(), config.New(config.Env(nil)), slog.New(slog.DiscardHandler), notificationsenv.Needs{Events: true})
	if err == nil || !strings.Contains(err.Error(), "Needs.Consumer") {
		t.Errorf("Load with Needs.Events and no Needs.Consumer = %v, want a refusal naming Needs.Consumer", err)
	}
}
