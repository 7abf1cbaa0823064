// Command outbox-relay publishes every service database's outbox rows to the
// RabbitMQ events exchange (see internal/relay and docs/events.md).
//
// Environment (defaults in brackets):
//
//	USERS_, CATALOG_, ORDERS_, INVENTORY_, PAYMENTS_DATABASE_URL  service databases; unset ones are skipped
//	RABBITMQ_URL            [amqp://guest:guest@127.0.0.1:5672/]
//	EXCHANGE_PREFIX         prefix of every exchange and queue name [""]
//	RELAY_BATCH_SIZE        rows per confirm round, twice that while rows restored from another cluster remain [100]
//	RELAY_BATCH_WAIT        wait after a NOTIFY before reading, so the commits behind it share the batch; 0 reads at once [10ms]
//	RELAY_POLL_INTERVAL     fallback poll when no NOTIFY arrives [1s]
//	RELAY_CONFIRM_TIMEOUT   longest a batch's writes and RabbitMQ's confirmation of it take (a connection the broker blocks is not read); past it the rows stay pending and go again on a new connection [15s]
//	OUTBOX_RETENTION        how long published rows are kept [168h]
//	INBOX_RETENTION         how long consumers' processed-event ids (and the catalog's settled sales) are kept [720h], above 5m; each database is pruned with the longest of this and its consumers' recorded INBOX_RETENTION (inbox_retentions), with a warning when a consumer's is longer
//	NOTIFICATION_RETENTION  how long the users database's notifications are kept at least; at least INBOX_RETENTION; kept as long as notify-user's recorded INBOX_RETENTION when that is longer, logged once per value [2160h, or INBOX_RETENTION when longer]
//	DATABASE_CREATE         the functions create their databases on first request (development): a missing one is awaited, not an error [false]
//	METRICS_ADDR            Prometheus /metrics listen address [127.0.0.1:0]; "off" disables
//	LOG_LEVEL               debug, info, warn, error [info]
//	PPROF_CPU_DIR           write a CPU profile of the run there at stop, when PPROF_FUNCTIONS is empty or names outbox-relay [""]
//	SECRETS_DIR             secret event-signing-key (required), optional secrets db-password-relay (the relay's own login role, shop_relay) and rabbitmq-password (the broker password) [/var/openfaas/secrets]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/relay"
	"github.com/shopfaas/shop/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "outbox-relay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	c := config.New(getenv)
	// The registry METRICS_ADDR serves, its failed span exports counted
	// there from the start (telemetry.StartProcess).
	reg := prometheus.NewRegistry()
	log, end, err := telemetry.StartProcess(ctx, "outbox-relay", os.Stdout, getenv, reg)
	if err != nil {
		return err
	}
	defer end()
	password := c.OptionalSecret(relay.PasswordSecret)
	signingKey := c.Secret("event-signing-key", "", false)
	cfg := relay.Config{
		Names:                 broker.Names{Prefix: c.String("EXCHANGE_PREFIX", "")},
		BatchSize:             c.Int("RELAY_BATCH_SIZE", 100, 1, 10000),
		BatchWait:             batchWait(c.Duration("RELAY_BATCH_WAIT", relay.DefaultBatchWait)),
		PollInterval:          c.Duration("RELAY_POLL_INTERVAL", time.Second),
		ConfirmTimeout:        c.Duration("RELAY_CONFIRM_TIMEOUT", relay.DefaultConfirmTimeout),
		Retention:             c.Duration("OUTBOX_RETENTION", 7*24*time.Hour),
		InboxRetention:        inbox.RetentionFrom(c),
		NotificationRetention: c.Duration("NOTIFICATION_RETENTION", 0),
		// The functions' own setting: their first request creates the database.
		CreatedOnDemand: c.Bool("DATABASE_CREATE", false),
	}
	for _, name := range []string{"users", "catalog", "orders", "inventory", "payments"} {
		if url := c.String(strings.ToUpper(name)+"_DATABASE_URL", ""); url != "" {
			cfg.Databases = append(cfg.Databases, relay.Database{Name: name, URL: url, Password: password})
		}
	}
	metricsAddr := c.String("METRICS_ADDR", "127.0.0.1:0")
	brokerURL, brokerPassword := c.String("RABBITMQ_URL", broker.DefaultURL), c.OptionalSecret(broker.PasswordSecret)
	if err := c.Err(); err != nil {
		return err
	}
	if cfg.BrokerURL, err = broker.URL(brokerURL, brokerPassword); err != nil {
		return err
	}
	if cfg.Signer, err = events.ParseSigner(signingKey); err != nil {
		return err
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r, err := relay.New(cfg, log, reg)
	if err != nil {
		return err
	}
	if err := telemetry.ServeMetrics(ctx, metricsAddr, reg, log); err != nil {
		return err
	}
	log.Info("outbox relay starting", "databases", len(cfg.Databases))
	r.Run(ctx)
	return nil
}

// batchWait maps RELAY_BATCH_WAIT to relay.Config.BatchWait, where 0 is the
// default: the setting's 0 reads at once.
func batchWait(d time.Duration) time.Duration {
	if d <= 0 {
		return relay.NoBatchWait
	}
	return d
}
