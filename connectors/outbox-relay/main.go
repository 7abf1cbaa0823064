// Command outbox-relay publishes every service database's outbox rows to the
// RabbitMQ events exchange (see internal/relay and docs/events.md).
//
// Environment (defaults in brackets):
//
//	USERS_, CATALOG_, ORDERS_, INVENTORY_, PAYMENTS_DATABASE_URL  service databases; unset ones are skipped
//	RABBITMQ_URL            [amqp://guest:guest@127.0.0.1:5672/]
//	EXCHANGE_PREFIX         prefix of every exchange and queue name [""]
//	RELAY_BATCH_SIZE        rows per confirm round [100]
//	RELAY_POLL_INTERVAL     fallback poll when no NOTIFY arrives [1s]
//	OUTBOX_RETENTION        how long published rows are kept [168h]
//	INBOX_RETENTION         how long consumers' processed-event ids are kept [720h]
//	METRICS_ADDR            Prometheus /metrics listen address [127.0.0.1:0]; "off" disables
//	LOG_LEVEL               debug, info, warn, error [info]
//	SECRETS_DIR             optional secret db-password [/var/openfaas/secrets]
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/config"
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
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("LOG_LEVEL", "info"))); err != nil {
		level = slog.LevelInfo
	}
	log := telemetry.NewLogger(os.Stdout, "outbox-relay", level)
	shutdownTracing, err := telemetry.Setup(ctx, "outbox-relay", getenv)
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()
	password := c.OptionalSecret("db-password")
	cfg := relay.Config{
		BrokerURL:      c.String("RABBITMQ_URL", broker.DefaultURL),
		Names:          broker.Names{Prefix: c.String("EXCHANGE_PREFIX", "")},
		BatchSize:      c.Int("RELAY_BATCH_SIZE", 100, 1, 10000),
		PollInterval:   c.Duration("RELAY_POLL_INTERVAL", time.Second),
		Retention:      c.Duration("OUTBOX_RETENTION", 7*24*time.Hour),
		InboxRetention: c.Duration("INBOX_RETENTION", 30*24*time.Hour),
	}
	for _, name := range []string{"users", "catalog", "orders", "inventory", "payments"} {
		if url := c.String(strings.ToUpper(name)+"_DATABASE_URL", ""); url != "" {
			cfg.Databases = append(cfg.Databases, relay.Database{Name: name, URL: url, Password: password})
		}
	}
	metricsAddr := c.String("METRICS_ADDR", "127.0.0.1:0")
	if err := c.Err(); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r, err := relay.New(cfg, log, reg)
	if err != nil {
		return err
	}
	if err := serveMetrics(ctx, metricsAddr, reg, log); err != nil {
		return err
	}
	log.Info("outbox relay starting", "databases", len(cfg.Databases))
	r.Run(ctx)
	return nil
}

// serveMetrics serves reg at addr/metrics until ctx ends; "off" or "" disables it.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	if addr == "" || addr == "off" || addr == "disabled" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("metrics listening", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return nil
}
