package connector

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/gatewayurl"
)

// TestDeliveriesGoDirectAndSurviveAClosedConnection: with a handler at its
// own address (Config.Direct) a delivery is invoked there, not through the
// gateway, and a delivery that meets a kept-alive connection the handler's
// replica closed is sent again on a new connection (deliveries are marked
// replayable: each handler's inbox drops a duplicate) instead of failing.
func TestDeliveriesGoDirectAndSurviveAClosedConnection(t *testing.T) {
	gw := fntest.NewUnusedGateway(t)
	var mu sync.Mutex
	var got []string
	direct := fntest.NewClosingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("X-Topic")+" "+string(body))
		mu.Unlock()
	}))
	d, err := gatewayurl.ParseDirect("notify-user="+direct.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{GatewayURL: gw.URL, Direct: d}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{`{"id":"1"}`, `{"id":"2"}`} {
		if status, err := c.invoke(context.Background(), "notify-user", "order.placed.v1", 1, amqp.Delivery{Body: []byte(body)}); err != nil || status != http.StatusOK {
			t.Fatalf("delivery %d: %d %v", i+1, status, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{`/ order.placed.v1 {"id":"1"}`, `/ order.placed.v1 {"id":"2"}`}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] || direct.Conns.Load() != 2 {
		t.Errorf("handler got %q on %d connections, want %q on 2", got, direct.Conns.Load(), want)
	}
}
