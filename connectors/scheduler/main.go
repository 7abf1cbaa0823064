// Command scheduler is the shop's cron connector: it discovers the functions
// of the OpenFaaS gateway whose "schedule" annotation holds a cron expression
// as openfaas/cron-connector reads it (robfig/cron/v3: five fields, names,
// @hourly, @every 5m, CRON_TZ=; see internal/schedule), with no topic or one
// listing "cron-function" (cron-connector wants exactly "cron-function", so
// it would not schedule the shop's functions, which carry none), and invokes
// POST $GATEWAY_URL/function/<name> on schedule with the internal credential,
// one run at a time per function. It never exits on a transient error (faasd
// has no restart policy).
//
// Configuration: GATEWAY_URL (required), REFRESH_INTERVAL (default 10s),
// INVOKE_TIMEOUT (default 2m; one run at a time per function holds only
// within it, since the function may go on after the scheduler gave its
// request up: keep it above the functions' exec_timeout and the gateway's
// upstream_timeout), SCHEDULE_TZ (default UTC), LOG_LEVEL; secret
// internal-token-scheduler (required: its own internal credential); basic_auth=true (faasd, faas-local) requires the
// secrets basic-auth-user and basic-auth-password for the gateway API, as
// the OpenFaaS connectors do; SECRETS_DIR (default /var/openfaas/secrets;
// the OpenFaaS connectors' secret_mount_path is not read).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/routes"
	"github.com/shopfaas/shop/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	c := config.New(getenv)
	// The scheduler serves no /metrics (it has no METRICS_ADDR): its failed
	// span exports are counted on a registry nobody reads, and logged at
	// WARN at most once a minute.
	log, end, err := telemetry.StartProcess(ctx, "scheduler", os.Stdout, getenv, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer end()
	cfg := Config{
		GatewayURL:      c.Required("GATEWAY_URL"),
		Credential:      auth.CredentialFrom(c, routes.CallerScheduler),
		RefreshInterval: c.Duration("REFRESH_INTERVAL", 10*time.Second),
		InvokeTimeout:   c.Duration("INVOKE_TIMEOUT", 2*time.Minute),
	}
	cfg.Username, cfg.Password = c.GatewayBasicAuth()
	tz := c.String("SCHEDULE_TZ", "UTC")
	if err := c.Err(); err != nil {
		return err
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return fmt.Errorf("SCHEDULE_TZ: %w", err)
	}
	cfg.Location = loc
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	ticker := time.NewTicker(time.Second) // due times are whole seconds; a second's lateness at most
	defer ticker.Stop()
	refresh := time.NewTicker(s.cfg.RefreshInterval)
	defer refresh.Stop()
	log.Info("scheduler starting", "gateway", gatewayurl.Shown(cfg.GatewayURL), "refresh_interval", s.cfg.RefreshInterval.String(), "tz", loc.String())
	s.Run(ctx, ticker.C, refresh.C)
	log.Info("scheduler stopped")
	return nil
}
