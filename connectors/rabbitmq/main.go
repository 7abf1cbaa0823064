// Command rabbitmq delivers events from RabbitMQ to the functions that
// subscribe to them with a `topic` annotation (see internal/connector and
// README.md in this directory for the configuration).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/connector"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/routes"
	"github.com/shopfaas/shop/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "rabbitmq-connector:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	c := config.New(getenv)
	// The registry METRICS_ADDR serves, its failed span exports counted
	// there from the start (telemetry.StartProcess).
	reg := prometheus.NewRegistry()
	log, end, err := telemetry.StartProcess(ctx, "rabbitmq-connector", os.Stdout, getenv, reg)
	if err != nil {
		return err
	}
	defer end()
	loc := gatewayurl.FromConfig(c)
	stopCfg := connector.StopConfig(c)
	cfg := connector.Config{
		GatewayURL:      loc.Gateway,
		Direct:          loc.Direct,
		Names:           broker.Names{Prefix: c.String("EXCHANGE_PREFIX", "")},
		MaxAttempts:     c.Int("MAX_ATTEMPTS", 5, 1, 20),
		RetryDelay:      c.Duration("RETRY_DELAY", 5*time.Second),
		MaxRetryDelay:   c.Duration("MAX_RETRY_DELAY", 5*time.Minute),
		Prefetch:        c.Int("PREFETCH", 10, 1, 1000),
		Concurrency:     c.Int("CONCURRENCY", 0, 0, 1000),
		RefreshInterval: c.Duration("REFRESH_INTERVAL", 5*time.Second),
		UnbindAfter:     c.Duration("UNBIND_AFTER", 10*time.Minute),
		InvokeTimeout:   stopCfg.InvokeTimeout,
		StopTimeout:     stopCfg.StopTimeout,
		InternalToken:   auth.CredentialFrom(c, routes.CallerRabbitMQ),
	}
	cfg.GatewayUser, cfg.GatewayPassword = c.GatewayBasicAuth()
	metricsAddr := c.String("METRICS_ADDR", "127.0.0.1:0")
	brokerURL, brokerPassword := c.String("RABBITMQ_URL", broker.DefaultURL), c.OptionalSecret(broker.PasswordSecret)
	if err := c.Err(); err != nil {
		return err
	}
	if cfg.BrokerURL, err = broker.URL(brokerURL, brokerPassword); err != nil {
		return err
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	conn, err := connector.New(cfg, log, reg)
	if err != nil {
		return err
	}
	return runServingMetrics(ctx, metricsAddr, reg, log, func(ctx context.Context) {
		log.Info("rabbitmq connector starting", "gateway", gatewayurl.Shown(cfg.GatewayURL), "max_attempts", cfg.MaxAttempts)
		conn.Run(ctx)
	})
}

// runServingMetrics serves reg's /metrics at addr (telemetry.ServeMetrics)
// from before run starts until it returns, not until ctx ends: a stop's
// drain (up to STOP_TIMEOUT) counts the acks and requeues of the
// invocations it waits for, and a scrape meanwhile reads them. Until
// 2026-12-08 /metrics shut as the stop began.
func runServingMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger, run func(context.Context)) error {
	mctx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMetrics()
	if err := telemetry.ServeMetrics(mctx, addr, reg, log); err != nil {
		return err
	}
	run(ctx)
	return nil
}
