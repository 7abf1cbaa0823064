package relay

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/broker/rabbitnode"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/proctest"
)

// A connection lost while the relay waits for a batch's confirmations (the
// queue bound to the event suspended, so none comes; then every connection
// of the node killed) is a failed publish at once: the client closes the
// channel's returns along with it, and the read of the returns must stop on
// the closed channel. Until 2026-12-07 (the day mandatory publishing came) it
// read the closed channel for ever: the worker spun at full CPU, published
// nothing again and never stopped. It runs a private RabbitMQ node, since it
// suspends a queue's process and kills connections.
func TestAConnectionLostMidBatchIsAFailedPublish(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private RabbitMQ node; -short was asked for")
	}
	ctx := context.Background()
	nodeCtx := proctest.DeadlineContext(t, proctest.CleanupMargin)
	node, err := rabbitnode.Start(nodeCtx, rabbitnode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	proctest.CloseAtEnd(t, node)
	names := broker.Names{Prefix: "t."}
	conn, err := amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	const queue = "t.stalled"
	if err := broker.DeclareExchange(ch, names); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, events.OrderPlaced, names.Exchange(), false, nil); err != nil {
		t.Fatal(err)
	}
	queueProcess := `sys:%s(begin {ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<"` + queue +
		`">>)), amqqueue:get_pid(Q) end).`
	if out, err := node.Eval(nodeCtx, fmt.Sprintf(queueProcess, "suspend")); err != nil {
		t.Fatalf("suspend %s: %v %s", queue, err, out)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			ctx, cancel := context.WithTimeout(context.Background(), proctest.CleanupTimeout)
			defer cancel()
			_, _ = node.Eval(ctx, fmt.Sprintf(queueProcess, "resume"))
		}
	})

	pool, url := openOutbox(t)
	reg := prometheus.NewRegistry()
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: node.URL(), Names: names,
		ConfirmTimeout: time.Minute, // the lost connection, not this, must end the wait
		PollInterval:   200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond},
		slog.New(slog.DiscardHandler), reg)
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
	if out, err := node.Eval(nodeCtx, `[exit(P, kill) || P <- rabbit_networking:connections()].`); err != nil {
		t.Fatalf("kill the connections: %v %s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for testutil.ToFloat64(r.metrics.errors.WithLabelValues("orders", "broker")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no broker error within 15 s of the lost connection (ConfirmTimeout 1 min): the worker is stuck")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := node.Eval(nodeCtx, fmt.Sprintf(queueProcess, "resume")); err != nil {
		t.Fatalf("resume %s: %v %s", queue, err, out)
	}
	resumed = true
	allMarked(t, pool) // published again on a new connection
}
