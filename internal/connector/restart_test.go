package connector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/broker/rabbitnode"
	"github.com/shopfaas/shop/internal/proctest"
)

// failFirst answers 503 to the first k calls of each event id, then 200.
func failFirst(k int) func(int) int {
	return func(n int) int {
		if n <= k {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
}

// publishConfirmed publishes n events of topic to the exchange with
// publisher confirms, on a connection of its own.
func publishConfirmed(t *testing.T, url string, names broker.Names, topic string, n int) []string {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range n {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id := "evt-" + hex.EncodeToString(b)
		body := `{"specversion":"1.0","id":"` + id + `","source":"test","type":"` + topic + `","data":{}}`
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), names.Exchange(), topic, false, false, amqp.Publishing{
			ContentType: broker.ContentType, DeliveryMode: amqp.Persistent, MessageId: id, Type: topic, Body: []byte(body),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !dc.Wait() {
			t.Fatalf("publish of %s nacked", id)
		}
		ids = append(ids, id)
	}
	return ids
}

// waitAttempts waits until every id had at least n calls of fn, for at most
// within or what the test's deadline leaves of it (proctest.BeforeDeadline).
func (g *gateway) waitAttempts(t *testing.T, fn string, ids []string, n int, within time.Duration) {
	t.Helper()
	within = proctest.BeforeDeadline(t, within, proctest.CleanupMargin)
	deadline := time.Now().Add(within)
	for {
		missing := 0
		count := map[string]int{}
		for _, c := range g.callsOf(fn) {
			count[c.id]++
		}
		for _, id := range ids {
			if count[id] < n {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d events had fewer than %d calls after %s", fn, missing, len(ids), n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRetriesSurviveBrokerRestartAndCrash is issue 9's loss: deliveries
// waiting in retry queues while the broker is stopped and started
// (stop_app/start_app), and again while the node is killed with SIGKILL and
// booted again. Every event must reach every handler: on classic retry
// queues (at-most-once dead-lettering) events expiring around the restart
// are dropped. It runs a private RabbitMQ node, so it disturbs nobody.
func TestRetriesSurviveBrokerRestartAndCrash(t *testing.T) {
	ctx := proctest.DeadlineContext(t, proctest.CleanupMargin)
	node, names := privateNode(t)

	const topic = "thing.happened.v1"
	gw := newGateway(t)
	// Two handlers of the same event, failing a different number of times.
	failures := map[string]int{"fail-once": 1, "fail-twice": 2}
	for fn, k := range failures {
		gw.set(fn, topic, failFirst(k))
	}
	cfg := Config{
		GatewayURL: gw.srv.URL, BrokerURL: node.URL(), Names: names, MaxAttempts: 6,
		RetryDelay: 3 * time.Second, Prefetch: 10, RefreshInterval: 200 * time.Millisecond,
		InvokeTimeout: 5 * time.Second, MaxBackoff: 500 * time.Millisecond,
		InternalToken: "test-internal-token", GatewayUser: "gw-admin", GatewayPassword: "gw-password",
	}
	logw := io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	runConnector(t, cfg, slog.New(slog.NewTextHandler(logw, nil)))
	gw.synced(t)
	// The queues exist once the connector subscribed.
	waitQueue(t, node.URL(), names.Queue("fail-twice"))

	restarts := []struct {
		name    string
		restart func() error
	}{
		{"stop_app/start_app", func() error {
			if err := node.StopApp(ctx); err != nil {
				return err
			}
			// Longer than the first retry delay: the waiting deliveries
			// expire while the broker is down.
			time.Sleep(2 * cfg.RetryDelay)
			return node.StartApp(ctx)
		}},
		{"SIGKILL and boot", func() error {
			if err := node.Kill(); err != nil {
				return err
			}
			time.Sleep(2 * cfg.RetryDelay)
			return node.Start(ctx)
		}},
	}
	var all []string
	for _, r := range restarts {
		ids := publishConfirmed(t, node.URL(), names, topic, 40)
		all = append(all, ids...)
		// Every delivery failed once: all 40 wait in the retry queues.
		for fn := range failures {
			gw.waitAttempts(t, fn, ids, 1, 60*time.Second)
		}
		begin := time.Now()
		if err := r.restart(); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		t.Logf("%s took %s", r.name, time.Since(begin).Round(time.Millisecond))
		for fn, k := range failures {
			gw.waitAttempts(t, fn, ids, k+1, 3*time.Minute)
		}
	}
	// Exactly once per handler: each event reached its successful call
	// (attempt k+1) once; a further call would be a redelivery that an
	// idempotent handler answers as a duplicate.
	for fn, k := range failures {
		count := map[string]int{}
		for _, c := range gw.callsOf(fn) {
			count[c.id]++
		}
		dups := 0
		for _, id := range all {
			if count[id] < k+1 {
				t.Errorf("%s: event %s never succeeded (%d calls)", fn, id, count[id])
			}
			dups += max(0, count[id]-(k+1))
		}
		t.Logf("%s: %d events processed, %d redeliveries after success (idempotent duplicates)", fn, len(all), dups)
		if n := deadLetterCount(t, node.URL(), names, fn); n != 0 {
			t.Errorf("%s: %d dead letters, want 0", fn, n)
		}
	}
}

func waitQueue(t *testing.T, url, queue string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := amqp.Dial(url)
		if err == nil {
			ch, err := conn.Channel()
			if err == nil {
				_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
			}
			_ = conn.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s not declared: %v", queue, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func deadLetterCount(t *testing.T, url string, names broker.Names, fn string) int {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	n, err := broker.CountDeadLetters(conn, names, fn)
	if err != nil {
		t.Fatal(fmt.Errorf("count dead letters of %s: %w", fn, err))
	}
	return n
}

// TestUpgradeFromClassicRetryQueues starts the connector where an earlier
// release left classic retry queues holding deliveries: nothing fails on
// redeclaration, every waiting delivery moves to the quorum retry queue of
// its delay, and the legacy queues are deleted.
func TestUpgradeFromClassicRetryQueues(t *testing.T) {
	t.Parallel()
	e := setup(t, "upgraded")
	e.cfg.RetryDelay = 20 * time.Second
	e.cfg.MaxAttempts = 3
	const topic = "thing.happened.v1"
	e.gw.set("upgraded", topic, nil)
	// What the previous release declared and left behind.
	legacy := map[time.Duration]int{20 * time.Second: 3, 40 * time.Second: 2}
	for d, n := range legacy {
		q := e.names.LegacyRetry("upgraded", d)
		args := amqp.Table{"x-message-ttl": d.Milliseconds(), "x-dead-letter-exchange": "",
			"x-dead-letter-routing-key": e.names.Queue("upgraded")}
		if _, err := e.ch.QueueDeclare(q, true, false, false, false, args); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if c, err := e.conn.Channel(); err == nil {
				_, _ = c.QueueDelete(q, false, false, false)
				_ = c.Close()
			}
		})
		for i := range n {
			err := e.ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{
				ContentType: broker.ContentType, DeliveryMode: amqp.Persistent, MessageId: fmt.Sprintf("old-%d-%d", d/time.Second, i),
				Headers: amqp.Table{broker.HeaderAttempts: int32(1), broker.HeaderTopic: topic}, Body: []byte(`{}`),
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		waitLen(t, e, q, n)
	}
	e.start(t)
	e.gw.synced(t)
	for d, n := range legacy {
		waitLen(t, e, e.names.Retry("upgraded", d), n)
		ch, err := e.conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclarePassive(e.names.LegacyRetry("upgraded", d), true, false, false, false, nil)
		if err == nil {
			t.Errorf("legacy queue %s still exists", e.names.LegacyRetry("upgraded", d))
			_ = ch.Close()
		}
	}
	// The new queues are the at-least-once kind: a redeclaration with
	// RetryArgs succeeds (it would fail with PRECONDITION_FAILED otherwise).
	ch, err := e.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.DeclareFunction(ch, e.names, "upgraded", e.cfg.Delays()); err != nil {
		t.Fatalf("redeclare after upgrade: %v", err)
	}
}

// A retry copy whose confirmation never comes (here the retry queue's process
// is suspended, as a quorum queue without a leader would leave it) no longer
// holds the delivery, and the function's publishing, forever: after
// InvokeTimeout the original is requeued and delivered again. Until
// 2026-12-03 the wait had no deadline. It runs a private RabbitMQ node, since
// it suspends a queue's process.
func TestAnUnconfirmedCopyRequeuesTheOriginal(t *testing.T) {
	node, names := privateNode(t)

	const topic = "thing.happened.v1"
	gw := newGateway(t)
	gw.set("stalled", topic, failFirst(1))
	cfg := stalledConfig(gw, node, names, 2*time.Second)
	runConnector(t, cfg, slog.New(slog.DiscardHandler))
	suspendQueue(t, node, names.Retry("stalled", cfg.Delays()[0]))

	id := publishConfirmed(t, node.URL(), names, topic, 1)[0]
	calls := gw.waitCalls(t, "stalled", 2, 30*time.Second)
	if calls[1].id != id || calls[1].headers.Get("X-Attempt") != "1" {
		t.Errorf("second call: id %s attempt %s, want the requeued original %s, attempt 1",
			calls[1].id, calls[1].headers.Get("X-Attempt"), id)
	}
}

// A stop while a failed delivery's retry copy awaits its confirmation (here
// the retry queue's process is suspended) requeues the delivery as every
// requeue at a worker's stop is, counted in shop_connector_requeued_total
// (docs/events.md, "RabbitMQ 4", TestEveryRequeueAtAStopIsCounted), not as an
// invocation's outcome: outcome="requeue" counts only copies the broker
// refused or did not confirm within InvokeTimeout. Until 2026-12-07 the stop's cancelled publish was
// counted as a requeue and logged as a copy the broker did not take.
func TestAStopWhileACopyAwaitsItsConfirmIsNoRequeue(t *testing.T) {
	node, names := privateNode(t)

	const topic = "thing.happened.v1"
	gw := newGateway(t)
	gw.set("stopped", topic, failFirst(1))
	cfg := stalledConfig(gw, node, names, time.Minute)
	reg, stop := startConnector(t, cfg, slog.New(slog.DiscardHandler))
	suspendQueue(t, node, names.Retry("stopped", cfg.Delays()[0]))

	publishConfirmed(t, node.URL(), names, topic, 1)
	gw.waitCalls(t, "stopped", 1, 30*time.Second)
	time.Sleep(500 * time.Millisecond) // the copy is published and awaits its confirmation
	stop()
	if got := invocations(t, reg, "stopped", "requeue"); got != 0 {
		t.Errorf("a stop while the copy awaited its confirmation counted %v requeues, want none", got)
	}
}

// stalledConfig is the configuration of the tests whose retry queue is
// suspended: one function, one delivery at a time, invokeTimeout as the
// wait for a copy's confirmation.
func stalledConfig(gw *gateway, node *rabbitnode.Node, names broker.Names, invokeTimeout time.Duration) Config {
	return Config{
		GatewayURL: gw.srv.URL, BrokerURL: node.URL(), Names: names, MaxAttempts: 3,
		RetryDelay: time.Second, Prefetch: 1, RefreshInterval: 200 * time.Millisecond,
		InvokeTimeout: invokeTimeout, MaxBackoff: 500 * time.Millisecond,
		InternalToken: "test-internal-token", GatewayUser: "gw-admin", GatewayPassword: "gw-password",
	}
}

// suspendQueue waits for queue to exist on node and suspends its process
// until the test's end, as a quorum queue without a leader would leave it:
// what is published to it is never confirmed.
func suspendQueue(t *testing.T, node *rabbitnode.Node, queue string) {
	t.Helper()
	waitQueue(t, node.URL(), queue)
	ctx := proctest.DeadlineContext(t, proctest.CleanupMargin)
	process := `sys:%s(begin {ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<"` + queue +
		`">>)), amqqueue:get_pid(Q) end).`
	if out, err := node.Eval(ctx, fmt.Sprintf(process, "suspend")); err != nil {
		t.Fatalf("suspend %s: %v %s", queue, err, out)
	}
	t.Cleanup(func() { _, _ = node.Eval(ctx, fmt.Sprintf(process, "resume")) })
}

// privateNode starts a RabbitMQ node of the test's own, stopped at its end,
// with the events exchange of names (prefix "t.") declared.
func privateNode(t *testing.T) (*rabbitnode.Node, broker.Names) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a private RabbitMQ node; -short was asked for")
	}
	start := time.Now()
	node, err := rabbitnode.Start(proctest.DeadlineContext(t, proctest.CleanupMargin), rabbitnode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	proctest.CloseAtEnd(t, node)
	t.Logf("private node %s on port %d up in %s", node.Name(), node.Port(), time.Since(start).Round(time.Millisecond))
	names := broker.Names{Prefix: "t."}
	conn, err := amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.DeclareExchange(ch, names); err != nil {
		t.Fatal(err)
	}
	return node, names
}
