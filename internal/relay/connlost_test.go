package relay

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/proctest"
)

// A connection lost while the relay waits for a batch's confirmations (the
// queue bound to the event suspended, so none comes; then every connection
// of the node killed) is a failed publish at once: the client closes the
// channel's returns along with it, and the read of the returns must stop on
// the closed channel. Until 2026-12-07 (the day mandatory publishing came) it
// read the closed channel for ever: the worker spun at full CPU, published
// nothing again and never stopped. The failure is logged as the lost
// connection it is: the client ends the confirmations it waits for as nacks
// when the channel closes, and until 2026-12-07 the relay logged them as the
// broker's refusal ("broker nacked event"), sending an operator to look for
// a queue that rejects publishes. It runs a private RabbitMQ node, since it
// suspends a queue's process and kills connections.
func TestAConnectionLostMidBatchIsAFailedPublish(t *testing.T) {
	ctx := context.Background()
	st := stallQueue(t)

	pool, url := openOutbox(t)
	reg := prometheus.NewRegistry()
	logs := &proctest.Output{}
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: st.node.URL(), Names: st.names,
		ConfirmTimeout: time.Minute, // the lost connection, not this, must end the wait
		PollInterval:   200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond},
		slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		insertEvent(t, ctx, tx, "stalled")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // published, waiting for its confirmation
	if out, err := st.node.Eval(st.ctx, `[exit(P, kill) || P <- rabbit_networking:connections()].`); err != nil {
		t.Fatalf("kill the connections: %v %s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for testutil.ToFloat64(r.metrics.errors.WithLabelValues("orders", "broker")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no broker error within 15 s of the lost connection (ConfirmTimeout 1 min): the worker is stuck")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var failed string
	waitFor(t, 5*time.Second, "the failed publish's log line", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "publishing failed") {
				failed = line
				return true
			}
		}
		return false
	})
	if strings.Contains(failed, "nack") || !strings.Contains(failed, "the connection to the broker was lost") {
		t.Errorf("the failed publish is logged as %q, want the lost connection, not a nack", failed)
	}
	st.resume(t)
	allMarked(t, pool) // published again on a new connection
}
