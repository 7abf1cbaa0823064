package connector

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/shopfaas/shop/internal/telemetry"
)

// The line that says a delivery failed (retry, then dead letter) carries the
// trace id of the message's traceparent, so an operator finds the event's
// trace from the log. Until 2026-12-03 it was logged with the subscription's
// context, not the delivery span's, and had no trace_id.
func TestAFailedDeliveryIsLoggedWithItsTraceID(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	e := setup(t, "down")
	e.cfg.MaxAttempts = 2
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("down", topic, func(int) int { return http.StatusServiceUnavailable })
	// A file takes the connector's concurrent writes whole (one per line).
	path := filepath.Join(t.TempDir(), "connector.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	e.startLogging(t, telemetry.NewLogger(f, "rabbitmq-connector", slog.LevelInfo))
	e.gw.synced(t)
	id := e.publish(t, topic)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736" // traceparent's
	var failed []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(failed) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		failed = failed[:0]
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("log line %q: %v", sc.Text(), err)
			}
			if line["msg"] == "invocation failed" {
				failed = append(failed, line)
			}
		}
	}
	if len(failed) != 2 {
		t.Fatalf("%d \"invocation failed\" lines, want 2 (retry, dead letter)", len(failed))
	}
	for i, next := range []string{"retry", "dead_letter"} {
		line := failed[i]
		if line["id"] != id || line["next"] != next || line["status"] != float64(http.StatusServiceUnavailable) {
			t.Errorf("line %d: %v, want event %s, next %s, status 503", i, line, id, next)
		}
		if line["trace_id"] != traceID || line["span_id"] == nil {
			t.Errorf("line %d: trace_id %v span_id %v, want the message's trace %s and the delivery's span", i, line["trace_id"], line["span_id"], traceID)
		}
	}
}
