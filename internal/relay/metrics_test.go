package relay

import (
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestEveryDatabaseHasItsCountersFromTheStart: before anything happens,
// each database's published and error counters are exported at 0, so the
// dashboard and the OutboxRelayErrors alert read 0, not "no data".
func TestEveryDatabaseHasItsCountersFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{Databases: []Database{{Name: "orders", URL: "postgres://127.0.0.1/x"}, {Name: "catalog", URL: "postgres://127.0.0.1/y"}}}
	if _, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), reg); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "shop_outbox_relay_errors_total"); n != 4 {
		t.Errorf("%d shop_outbox_relay_errors_total series, want 4 (2 databases × database, broker)", n)
	}
	if n := testutil.CollectAndCount(reg, "shop_outbox_published_total"); n != 2 {
		t.Errorf("%d shop_outbox_published_total series, want 2", n)
	}
}
