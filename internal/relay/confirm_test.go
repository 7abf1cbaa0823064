package relay

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/broker/rabbitnode"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/proctest"
)

// A batch whose confirmation never comes (here the process of a queue
// bound to the event is suspended, as a quorum queue without a leader would
// leave it) is a failed publish after ConfirmTimeout: the relay counts a
// broker error, refreshes the lag gauges, ends the publish span with status
// Error and keeps the row pending; once the queue answers again the row is
// published. Until 2026-12-03 the wait had no deadline: the worker and its
// lag gauges stopped there, so OutboxLagHigh could not fire. It runs a
// private RabbitMQ node, since it suspends a queue's process.
func TestAnUnconfirmedBatchStaysPendingAndIsRetried(t *testing.T) {
	ctx := context.Background()
	st := stallQueue(t)

	prev := otel.GetTracerProvider()
	spans := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	pool, url := openOutbox(t)
	reg := prometheus.NewRegistry()
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: st.node.URL(), Names: st.names,
		ConfirmTimeout: time.Second,
		PollInterval:   200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond},
		slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	var id string
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		id = insertEvent(t, ctx, tx, "stalled")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for testutil.ToFloat64(r.metrics.errors.WithLabelValues("orders", "broker")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no broker error within 15 s of an unconfirmed publish (ConfirmTimeout 1 s): the relay is still waiting")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := unpublished(t, pool); n != 1 {
		t.Errorf("%d rows pending after the unconfirmed publish, want 1", n)
	}
	// The failed publish is counted, then the gauges are refreshed.
	for gauge(t, reg, "shop_outbox_pending_events") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("pending gauge %v after the unconfirmed publish, want 1 (refreshed)", gauge(t, reg, "shop_outbox_pending_events"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var failed int
	for _, s := range spans.Ended() {
		if s.Name() == "publish "+events.OrderPlaced && s.Status().Code == codes.Error {
			failed++
		}
	}
	if failed == 0 {
		t.Errorf("no publish span ended with status Error: %v", spans.Ended())
	}

	st.resume(t)
	allMarked(t, pool)
	msg, ok, err := st.ch.Get(stalledQueue, true)
	if err != nil || !ok || msg.MessageId != id {
		t.Errorf("queue holds %q (%v, %v), want the event %s", msg.MessageId, ok, err, id)
	}
}

// A nacked event fails its publish span and the spans of every event after it
// in the batch: their rows are not marked and are published again. Here a
// queue that holds one message and rejects the rest (x-overflow
// reject-publish) nacks the second and third events of a batch of three.
// Until 2026-12-07 only the nacked event's span had the Error status; the
// third's ended with none, although its row went out again the next round.
func TestANackFailsTheSpansOfTheEventsAfterIt(t *testing.T) {
	ctx := context.Background()
	names, ch := declareExchange(t, "full")
	queue := names.Prefix + "full"
	if _, err := ch.QueueDeclare(queue, false, false, false, false,
		amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "#", names.Exchange(), false, nil); err != nil {
		t.Fatal(err)
	}

	prev := otel.GetTracerProvider()
	spans := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	pool, url := openOutbox(t)
	var ids []string
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		for _, subject := range []string{"first", "nacked", "after"} {
			ids = append(ids, insertEvent(t, ctx, tx, subject))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startRelay(t, ctx, Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names}, nil)

	// Wait for two rounds that published the last event.
	ofAfter := func() []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range spans.Ended() {
			for _, a := range s.Attributes() {
				if a.Key == "messaging.message.id" && a.Value.AsString() == ids[2] {
					out = append(out, s)
				}
			}
		}
		return out
	}
	waitFor(t, 15*time.Second, "two publish spans of the event after the nacked one", func() bool { return len(ofAfter()) >= 2 })
	for _, s := range ofAfter() {
		if s.Status().Code != codes.Error {
			t.Errorf("publish span of the event after the nacked one ended with status %v %q, want Error", s.Status().Code, s.Status().Description)
		}
	}
	var nacked int
	for _, s := range spans.Ended() {
		if s.Status().Description == "nacked" {
			nacked++
		}
	}
	if nacked == 0 {
		t.Error("no publish span ended with the status nacked")
	}
	if n := unpublished(t, pool); n != 2 {
		t.Errorf("%d rows pending, want 2 (the nacked event and the one after it)", n)
	}
}

// stalledQueue is the quorum queue stallQueue binds to order.placed.
const stalledQueue = "t.stalled"

// stalled is a private RabbitMQ node whose queue stalledQueue, bound to
// order.placed on the exchange of names, is suspended: a publish of that
// event is never confirmed until resume (as a quorum queue without a leader
// would leave it). ctx bounds the node's start and rabbitmqctl calls.
type stalled struct {
	ctx     context.Context
	node    *rabbitnode.Node
	names   broker.Names
	ch      *amqp.Channel
	resumed bool
}

// stallQueue starts the node, declares the exchange and stalledQueue and
// suspends the queue's process; the test's end resumes it if the test did
// not. A private node, since it suspends a queue's process.
func stallQueue(t *testing.T) *stalled {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a private RabbitMQ node; -short was asked for")
	}
	// The node's start and rabbitmqctl end before go test's -timeout: a hang
	// fails the test with their message instead of a panic.
	st := &stalled{ctx: proctest.DeadlineContext(t, proctest.CleanupMargin), names: broker.Names{Prefix: "t."}}
	node, err := rabbitnode.Start(st.ctx, rabbitnode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	proctest.CloseAtEnd(t, node)
	st.node = node
	conn, err := amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if st.ch, err = conn.Channel(); err != nil {
		t.Fatal(err)
	}
	if err := broker.DeclareExchange(st.ch, st.names); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ch.QueueDeclare(stalledQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := st.ch.QueueBind(stalledQueue, events.OrderPlaced, st.names.Exchange(), false, nil); err != nil {
		t.Fatal(err)
	}
	if out, err := node.Eval(st.ctx, st.queueProcess("suspend")); err != nil {
		t.Fatalf("suspend %s: %v %s", stalledQueue, err, out)
	}
	t.Cleanup(func() {
		if !st.resumed { // on a context of its own: st.ctx may have ended
			ctx, cancel := context.WithTimeout(context.Background(), proctest.CleanupTimeout)
			defer cancel()
			_, _ = node.Eval(ctx, st.queueProcess("resume"))
		}
	})
	return st
}

// queueProcess is the Erlang expression that runs sys:<call> on the
// queue's process.
func (st *stalled) queueProcess(call string) string {
	return `sys:` + call + `(begin {ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<"` + stalledQueue +
		`">>)), amqqueue:get_pid(Q) end).`
}

// resume lets the queue answer again.
func (st *stalled) resume(t *testing.T) {
	t.Helper()
	if out, err := st.node.Eval(st.ctx, st.queueProcess("resume")); err != nil {
		t.Fatalf("resume %s: %v %s", stalledQueue, err, out)
	}
	st.resumed = true
}
