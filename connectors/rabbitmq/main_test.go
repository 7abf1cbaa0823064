package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopfaas/shop/internal/proctest"
)

// A GATEWAY_URL carrying the gateway's basic-auth credentials in its
// userinfo (net/http sends them) works, and the start line must not write
// its password to the logs.
func TestTheStartLineNeverLogsTheGatewaysPassword(t *testing.T) {
	const password = "gw-s3cret-pw"
	secrets := t.TempDir()
	if err := os.WriteFile(filepath.Join(secrets, "internal-token-rabbitmq-connector"), []byte("test-credential"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GATEWAY_URL": "http://admin:" + password + "@127.0.0.1:1", "SECRETS_DIR": secrets,
		"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/", "METRICS_ADDR": "off"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the connector starts, logs, and stops at once
	var err error
	logs := proctest.Stdout(t, func() { err = run(ctx, func(k string) string { return env[k] }) })
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs)
	}
	if !strings.Contains(logs, "rabbitmq connector starting") || !strings.Contains(logs, "127.0.0.1:1") {
		t.Fatalf("no start line naming the gateway:\n%s", logs)
	}
	if strings.Contains(logs, password) {
		t.Errorf("the logs hold the gateway's password:\n%s", logs)
	}
}

// /metrics is served through a stop's drain, until the connector's Run
// returns, so that a scrape then reads the acks and requeues the drain
// counts; it is shut once Run has returned. Until 2026-12-08 it shut as the
// stop began. The drain is stood in for by a run that scrapes ten times
// after its context ended (the old shutdown began at once then).
func TestMetricsAreServedUntilTheConnectorReturns(t *testing.T) {
	logs := &proctest.Output{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var url string
	scrape := func() error {
		res, err := client.Get(url)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := runServingMetrics(ctx, "127.0.0.1:0", prometheus.NewRegistry(), log, func(ctx context.Context) {
		url = "http://" + listened(t, logs.String()) + "/metrics"
		cancel() // the stop begins
		<-ctx.Done()
		for i := range 10 {
			if err := scrape(); err != nil {
				t.Fatalf("scrape %d during the drain: %v", i+1, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); scrape() == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/metrics still served 5 s after Run returned")
		}
	}
}

// listened is the address of the "metrics listening" line in the JSON logs.
func listened(t *testing.T, logs string) string {
	t.Helper()
	for l := range strings.Lines(logs) {
		var line struct{ Msg, Addr string }
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "metrics listening" {
			return line.Addr
		}
	}
	t.Fatalf("no metrics listening line:\n%s", logs)
	return ""
}
