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
	// The connection cut (no connection.close from the broker): the
	// client's own error, 501 FRAME_ERROR, not the broker's.
	if !strings.Contains(failed, "amqp_code=501") || !strings.Contains(failed, "amqp_server=false") {
		t.Errorf("the failed publish is logged as %q, want the client's AMQP error (amqp_code=501, amqp_server=false)", failed)
	}
	st.resume(t)
	allMarked(t, pool) // published again on a new connection
}

// A publication whose channel the broker closes is logged with the broker's
// AMQP code and reason (amqp_code, amqp_reason, amqp_server): here a publish
// to the events exchange, deleted while the relay runs, 404 NOT_FOUND; the
// next channel declares the exchange again and the row goes out. Until
// 2026-12-07 the line said "the broker closed the channel" and nothing more,
// as it said of every close: an operator could not tell a refusal of the
// broker's (404, 406, 403) from a node that went away (320
// CONNECTION_FORCED, or 501 FRAME_ERROR from the client when the link
// broke).
func TestAChannelTheBrokerClosesIsLoggedWithItsCode(t *testing.T) {
	ctx := context.Background()
	names, ch := declareExchange(t)
	pool, url := openOutbox(t)
	logs := &proctest.Output{}
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names,
		PollInterval: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond},
		slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	commitEvent(t, ctx, pool, "first")
	allMarked(t, pool) // the relay's channel is open
	if err := ch.ExchangeDelete(names.Exchange(), false, false); err != nil {
		t.Fatal(err)
	}
	commitEvent(t, ctx, pool, "second")
	allMarked(t, pool) // published on a new channel, which declared the exchange again
	var failed string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "publishing failed") {
			failed = line
		}
	}
	for _, want := range []string{"the broker closed the channel", "amqp_code=404", "NOT_FOUND", "amqp_server=true"} {
		if !strings.Contains(failed, want) {
			t.Errorf("the failed publish is logged as %q, want %s in it", failed, want)
		}
	}
}
