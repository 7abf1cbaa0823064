package connector

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/broker/rabbitnode"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/tcpproxy"
)

// During a resource alarm RabbitMQ blocks every connection that publishes
// and stops reading it. A retry copy published then waits, and so does its
// delivery (unacked, requeued after InvokeTimeout); every other function's
// deliveries are still acknowledged and the next ones delivered, because the
// copies go out on a connection of their own. Once the alarm clears the copy
// lands in the retry queue and the event reaches its second attempt: nothing
// is lost. Until 2026-12-03 the copies went out on the connection that
// consumes and acknowledges: after the first copy of the alarm, the broker
// read none of the acknowledgements of any function (the runbook's
// RabbitMQResourceAlarm), so here "ok" never got its second event. It runs a
// private RabbitMQ node, since it raises the node's memory alarm.
func TestAnAlarmHoldsOnlyTheDeliveriesWaitingForACopy(t *testing.T) {
	ctx := proctest.DeadlineContext(t, proctest.CleanupMargin)
	node, names := privateNode(t)

	gw := newGateway(t)
	alarmed, released := newGate(t), newGate(t)
	// "failing" answers its first call once the alarm is up, with a 503: the
	// connector publishes a retry copy, which blocks. Its retry succeeds.
	gw.set("failing", "thing.failed.v1", func(n int) int {
		if n > 1 {
			return http.StatusOK
		}
		alarmed.wait()
		return http.StatusServiceUnavailable
	})
	// "ok" holds its first event until the copy is blocked, then answers
	// 200 to every event: with a prefetch of 1 its second event is delivered
	// only once the broker has read the first one's ack.
	gw.set("ok", "thing.done.v1", func(int) int {
		released.wait()
		return http.StatusOK
	})
	cfg := Config{
		GatewayURL: gw.srv.URL, BrokerURL: node.URL(), Names: names, MaxAttempts: 3,
		RetryDelay: time.Second, Prefetch: 1, RefreshInterval: 200 * time.Millisecond,
		// Longer than the alarm lasts here, also on a loaded machine where
		// each of the test's rabbitmqctl calls takes tens of seconds: the
		// copy is not given up on (which would requeue the original and
		// send a second copy later), nor "ok"'s held first call.
		InvokeTimeout: invokeTimeoutPastTheAlarm, MaxBackoff: 500 * time.Millisecond,
		InternalToken: "test-internal-token", GatewayUser: "gw-admin", GatewayPassword: "gw-password",
	}
	logs := &logRecorder{}
	runConnector(t, cfg, slog.New(logs))
	// Registered after the connector's cleanup, so it runs before it: the
	// connector stops after the alarm is gone even when the test fails.
	t.Cleanup(func() { clearMemoryAlarm(node) })
	waitConsumer(t, node.URL(), names.Queue("failing"))
	waitConsumer(t, node.URL(), names.Queue("ok"))

	failed := publishConfirmed(t, node.URL(), names, "thing.failed.v1", 1)[0]
	done := publishConfirmed(t, node.URL(), names, "thing.done.v1", 2)
	failingAt := gw.waitCalls(t, "failing", 1, 10*time.Second)[0].at
	okAt := gw.waitCalls(t, "ok", 1, 10*time.Second)[0].at

	if err := node.RaiseMemoryAlarm(ctx); err != nil {
		t.Fatal(err)
	}
	alarmedAt := time.Now()
	alarmed.open()
	// The connector published the copy and the broker blocked the
	// connection it went out on.
	waitBlockedConnection(t, node)
	released.open()
	t.Logf("failing's first answer held %s, ok's %s", alarmedAt.Sub(failingAt).Round(time.Millisecond),
		time.Since(okAt).Round(time.Millisecond))
	calls := gw.waitCalls(t, "ok", 2, 15*time.Second)
	if got := ids(calls[:2]); got[0] != done[0] || got[1] != done[1] {
		t.Errorf("ok's calls are for %v, want %v", got, done)
	}
	// Both acknowledged while the alarm holds; the failing delivery waits,
	// unacked, for its copy.
	waitQueueCounts(t, node, names.Queue("ok"), queueCounts{})
	waitQueueCounts(t, node, names.Queue("failing"), queueCounts{unacked: 1})
	waitLogged(t, logs, blockedLog)
	t.Logf("alarm held for %s", time.Since(alarmedAt).Round(time.Millisecond))

	if err := node.ClearMemoryAlarm(ctx); err != nil {
		t.Fatal(err)
	}
	waitLogged(t, logs, "the broker unblocked the publishing connection")
	calls = gw.waitCalls(t, "failing", 2, 30*time.Second)
	if c := calls[1]; c.id != failed || c.headers.Get("X-Attempt") != "2" {
		t.Errorf("failing's second call: id %s attempt %s, want %s attempt 2 (through the retry queue)",
			c.id, c.headers.Get("X-Attempt"), failed)
	}
	waitQueueCounts(t, node, names.Queue("failing"), queueCounts{})
	waitQueueCounts(t, node, names.Retry("failing", cfg.Delays()[0]), queueCounts{})
	if n := deadLetterCount(t, node.URL(), names, "failing"); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
	if n := len(gw.callsOf("failing")); n != 2 {
		t.Errorf("failing got %d calls, want 2", n)
	}
	if n := len(gw.callsOf("ok")); n != 2 {
		t.Errorf("ok got %d calls, want 2 (one per event)", n)
	}
}

// invokeTimeoutPastTheAlarm is the InvokeTimeout of the tests that raise a
// memory alarm and hold answers while it stands: longer than any of their
// alarms lasts, as long as make test's -timeout (15 min). Each rabbitmqctl
// call of theirs (raising, inspecting, clearing the alarm) takes a second or
// two on an idle machine and tens of seconds on a loaded one: at a load
// average of 15 "ok"'s first answer was held 1 min 37 s and the alarm stood
// 2 min 50 s, past the 30 s these tests had, after which the held call
// timed out and the blocked copy was given up on (the original requeued, the
// copy landing later): another scenario than the one they describe. It need
// not end before a shorter -timeout: the end of the connector's Run context
// (runConnector's cleanup) cuts held calls and blocked copies alike.
const invokeTimeoutPastTheAlarm = 15 * time.Minute

// clearMemoryAlarm clears node's memory alarm from a test's cleanup, on a
// context of its own: the test's may have ended.
func clearMemoryAlarm(node *rabbitnode.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), proctest.CleanupTimeout)
	defer cancel()
	_ = node.ClearMemoryAlarm(ctx)
}

// gate holds answers of the test gateway back until the test opens it: as
// long as the test takes to get there. A hold that gave up after a fixed
// 20 s let the answer go out early on a loaded machine, where the
// rabbitmqctl calls in between took longer (33 s at a load average of 15):
// "failing" answered its 503 before the alarm was raised, its copy went out
// unblocked, and no connection was ever blocked ("no connection blocked
// within 30s of the alarm", both connections merely "blocking"); "ok"
// answered its first event, so that its second was the one in flight when
// the consuming connection was cut, its ack lost with it, and delivered
// twice. A gate opens at the latest when the test ends, before the
// gateway's close, which waits for the answers it holds.
type gate struct {
	ch   chan struct{}
	open func()
}

func newGate(t *testing.T) gate {
	ch := make(chan struct{})
	g := gate{ch: ch, open: sync.OnceFunc(func() { close(ch) })}
	t.Cleanup(g.open)
	return g
}

// wait blocks until g is open.
func (g gate) wait() { <-g.ch }

const blockedLog = "the broker blocked the publishing connection (resource alarm): " +
	"retry and dead-letter copies wait, other deliveries are still acknowledged"

// waitLogged waits until the connector logged msg.
func waitLogged(t *testing.T, logs *logRecorder, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for logs.count(msg) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%q not logged within 10s", msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitConsumer waits until queue on the broker at url has a consumer.
func waitConsumer(t *testing.T, url, queue string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := amqp.Dial(url)
		q := amqp.Queue{}
		if err == nil {
			var ch *amqp.Channel
			if ch, err = conn.Channel(); err == nil {
				q, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
			}
			_ = conn.Close()
		}
		if err == nil && q.Consumers > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s has no consumer within 30s (%v)", queue, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitBlockedConnection waits until the node has blocked a connection
// (rabbitmqctl list_connections' state "blocked": it published during an
// alarm and is no longer read), and fails unless that is the connector's
// publishing connection while its consuming one is not blocked.
func waitBlockedConnection(t *testing.T, node *rabbitnode.Node) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	// A slow rabbitmqctl call (tens of seconds under load) may end past the
	// window, which is checked between calls: only the test's deadline cuts
	// one that hangs.
	ctx := proctest.DeadlineContext(t, proctest.CleanupMargin)
	for {
		out, err := node.Eval(ctx, `lists:flatten([io_lib:format("~s=~s;", [case lists:keyfind(<<"connection_name">>, 1, proplists:get_value(client_properties, I)) of {_, _, N} -> N; false -> <<"">> end, proplists:get_value(state, I)]) || I <- rabbit_networking:connection_info_all([client_properties, state])]).`)
		if err == nil && strings.Contains(out, "=blocked;") {
			if !strings.Contains(out, PubConnName+"=blocked;") || strings.Contains(out, ConnName+"=blocked;") {
				t.Fatalf("connections by state: %s; want %s blocked and %s not", out, PubConnName, ConnName)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection blocked within 30s of the alarm: %s %v", out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// queueCounts are a queue's ready and unacknowledged messages.
type queueCounts struct{ ready, unacked int }

// waitQueueCounts waits until queue holds want, as the node counts them.
func waitQueueCounts(t *testing.T, node *rabbitnode.Node, queue string, want queueCounts) {
	t.Helper()
	expr := `{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<"` + queue + `">>)),
		rabbit_amqqueue:info(Q, [messages_ready, messages_unacknowledged]).`
	ready := regexp.MustCompile(`\{messages_ready,(\d+)\}`)
	unacked := regexp.MustCompile(`\{messages_unacknowledged,(\d+)\}`)
	deadline := time.Now().Add(15 * time.Second)
	// A slow rabbitmqctl call (tens of seconds under load) may end past the
	// window, which is checked between calls: only the test's deadline cuts
	// one that hangs.
	ctx := proctest.DeadlineContext(t, proctest.CleanupMargin)
	var got queueCounts
	var out string
	var err error
	for {
		out, err = node.Eval(ctx, expr)
		r, u := ready.FindStringSubmatch(out), unacked.FindStringSubmatch(out)
		if err == nil && r != nil && u != nil {
			got.ready, _ = strconv.Atoi(r[1])
			got.unacked, _ = strconv.Atoi(u[1])
			if got == want {
				return
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: ready %d, unacked %d, want %d and %d (%s %v)", queue, got.ready, got.unacked, want.ready, want.unacked, out, err)
}

// Losing either connection while a retry copy waits for its confirmation
// loses no delivery and acks none twice: the session ends, both connections
// are opened again, the original (unacked) is delivered again, and the new
// publishing connection carries the next copy. The connector reaches the
// broker through a proxy that makes the publishing connection deaf (what it
// sends never reaches the broker, so the copy is never confirmed, as during
// an alarm) and then cuts one of the two connections. A delivery acked twice
// would close its consumer's channel (PRECONDITION_FAILED, unknown delivery
// tag), which the connector logs as a consumer the broker ended.
func TestALostConnectionLosesNoDelivery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cut  int // which connection of the session: 0 consumes, 1 publishes
	}{
		{"publishing connection", 1},
		{"consuming connection", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, "failing", "ok")
			proxy := tcpproxy.New(t, "127.0.0.1:5672")
			e.cfg.BrokerURL = "amqp://guest:guest@" + proxy.Addr() + "/"
			// Past the test's stall: the copy is still waiting when the
			// connection is cut.
			e.cfg.InvokeTimeout = 10 * time.Second
			topic, okTopic := e.names.Prefix+"order.placed.v1", e.names.Prefix+"order.cancelled.v1"
			e.gw.set("failing", topic, failFirst(1))
			e.gw.set("ok", okTopic, nil)
			logs := &logRecorder{}
			e.startLogging(t, slog.New(logs))
			waitConsumed(t, e, e.names.Queue("failing"))
			waitConsumed(t, e, e.names.Queue("ok"))

			proxy.Conn(t, 1).Deaf()
			id := e.publish(t, topic)
			e.gw.waitCalls(t, "failing", 1, 10*time.Second)
			proxy.Conn(t, 1).WaitSwallowed(t, 1)
			// The consuming connection goes on meanwhile.
			e.publish(t, okTopic)
			e.gw.waitCalls(t, "ok", 1, 10*time.Second)
			proxy.Conn(t, tc.cut).Cut()

			// With the consuming connection cut, the session ends once the
			// deaf one is closed: its close is given up after closeWait, or
			// at the client's next heartbeat (10 s) when one from the broker
			// pushed the deadline on. A close that waited for the broker to
			// drop the deaf connection (its heartbeat timeout) took 28 s.
			e.gw.waitCalls(t, "failing", 2, 20*time.Second)
			waitLen(t, e, e.names.Queue("failing"), 0)
			// A new publishing connection carries a copy.
			next := e.publish(t, topic)
			deadline := time.Now().Add(10 * time.Second)
			for !slices.ContainsFunc(e.gw.callsOf("failing"), func(c call) bool {
				return c.id == next && c.headers.Get("X-Attempt") == "2"
			}) {
				if time.Now().After(deadline) {
					t.Fatalf("no retry of %s through the new publishing connection: %v", next, ids(e.gw.callsOf("failing")))
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // a further delivery would come now
			calls := e.gw.callsOf("failing")
			for _, c := range calls {
				if c.id == id && c.headers.Get("X-Attempt") != "1" {
					t.Errorf("%s reached attempt %s: its copy was never confirmed, the original must be delivered again",
						id, c.headers.Get("X-Attempt"))
				}
			}
			if n := len(e.gw.callsOf("ok")); n != 1 {
				t.Errorf("ok got %d calls, want 1", n)
			}
			for _, q := range []string{e.names.Queue("failing"), e.names.Queue("ok"), e.names.Retry("failing", e.cfg.Delays()[0]), e.names.DLQ("failing")} {
				if n := e.queueLen(t, q); n != 0 {
					t.Errorf("%s holds %d messages, want 0", q, n)
				}
			}
			if n := logs.count("connected to RabbitMQ"); n != 2 {
				t.Errorf("%d broker sessions, want 2", n)
			}
			if n := proxy.Accepted(); n != 4 {
				t.Errorf("%d connections opened, want 4 (two per session)", n)
			}
			if n := logs.count("the broker ended the function's consumer, subscribing again"); n != 0 {
				t.Errorf("%d consumers ended by the broker, want 0 (a double ack, or a lost connection not ending the session)", n)
			}
		})
	}
}

// A publishing connection the broker blocked holds back nothing but the
// copies: the session goes on refreshing the function list, subscribes a
// function first seen during the alarm (its queue already holds an event,
// delivered and acknowledged while the alarm stands) and, when the consuming
// connection is lost, opens both connections again and goes on delivering to
// every function while the alarm stands. Once the alarm clears, a copy goes
// out on the new publishing connection. Until 2026-12-05 a refresh that met
// a function not yet subscribed opened channels on the blocked publishing
// connection (the legacy retry queues' migration, the function's confirm
// channel) and waited for the broker's answer until the alarm cleared: no
// refresh, no subscription, and a lost consuming connection went unnoticed,
// so nothing was consumed for any function. It runs a private RabbitMQ node,
// since it raises the node's memory alarm, behind a proxy that cuts the
// consuming connection.
func TestAnAlarmHoldsNeitherRefreshNorReconnect(t *testing.T) {
	ctx := proctest.DeadlineContext(t, proctest.CleanupMargin)
	node, names := privateNode(t)
	proxy := tcpproxy.New(t, "127.0.0.1:"+strconv.Itoa(node.Port()))

	gw := newGateway(t)
	alarmed, released := newGate(t), newGate(t)
	// "failing" answers an event's first call with a 503 once the alarm is
	// up: its retry copy blocks the publishing connection.
	const failingTopic, okTopic, newTopic = "thing.failed.v1", "thing.done.v1", "thing.new.v1"
	gw.set("failing", failingTopic, func(n int) int {
		if n > 1 {
			return http.StatusOK
		}
		alarmed.wait()
		return http.StatusServiceUnavailable
	})
	// "ok" holds its first event until the consuming connection is cut, so
	// its other events wait in its queue for the next session.
	gw.set("ok", okTopic, func(int) int {
		released.wait()
		return http.StatusOK
	})
	cfg := Config{
		GatewayURL: gw.srv.URL, BrokerURL: "amqp://guest:guest@" + proxy.Addr() + "/", Names: names, MaxAttempts: 3,
		RetryDelay: 500 * time.Millisecond, Prefetch: 1, RefreshInterval: 200 * time.Millisecond,
		// Longer than the alarm lasts here, also on a loaded machine: the
		// blocked copy is not given up on, nor "ok"'s held first call.
		InvokeTimeout: invokeTimeoutPastTheAlarm, MaxBackoff: 500 * time.Millisecond,
		InternalToken: "test-internal-token", GatewayUser: "gw-admin", GatewayPassword: "gw-password",
	}
	// "new" is not in the gateway's list yet, but its queue, bound to its
	// topic, was declared by an earlier run of the connector and holds an
	// event.
	conn, err := amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.DeclareFunction(ch, names, "new", cfg.Delays()); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(names.Queue("new"), newTopic, names.Exchange(), false, nil); err != nil {
		t.Fatal(err)
	}
	waiting := publishConfirmed(t, node.URL(), names, newTopic, 1)[0]

	logs := &logRecorder{}
	runConnector(t, cfg, slog.New(logs))
	// Registered after the connector's cleanup, so it runs before it: the
	// connector stops after the alarm is gone even when the test fails.
	t.Cleanup(func() { clearMemoryAlarm(node) })
	waitConsumer(t, node.URL(), names.Queue("failing"))
	waitConsumer(t, node.URL(), names.Queue("ok"))
	failed := publishConfirmed(t, node.URL(), names, failingTopic, 1)[0]
	done := publishConfirmed(t, node.URL(), names, okTopic, 3)
	failingAt := gw.waitCalls(t, "failing", 1, 30*time.Second)[0].at
	okAt := gw.waitCalls(t, "ok", 1, 30*time.Second)[0].at
	if err := node.RaiseMemoryAlarm(ctx); err != nil {
		t.Fatal(err)
	}
	alarmed.open()
	t.Logf("failing's first answer held %s", time.Since(failingAt).Round(time.Millisecond))
	waitBlockedConnection(t, node)

	gw.set("new", newTopic, nil)
	gw.synced(t)
	if calls := gw.waitCalls(t, "new", 1, 10*time.Second); calls[0].id != waiting {
		t.Errorf("new's call is for %s, want %s", calls[0].id, waiting)
	}
	waitQueueCounts(t, node, names.Queue("new"), queueCounts{})

	// The consuming connection (the session's first) is lost: the session
	// ends, and the next one delivers every waiting event of "ok" and, again,
	// failing's event, whose copy was never confirmed.
	proxy.Conn(t, 0).Cut()
	released.open()
	t.Logf("ok's first answer held %s", time.Since(okAt).Round(time.Millisecond))
	// The first event is delivered again: its answer, if any, came too late
	// for the lost connection.
	gw.waitCalls(t, "ok", 4, 30*time.Second)
	if got := ids(gw.callsOf("ok")); !slices.Equal(slices.Sorted(slices.Values(got[1:])), slices.Sorted(slices.Values(done))) {
		t.Errorf("ok's calls are for %v, want %v after the first, in any order", got, done)
	}
	calls := gw.waitCalls(t, "failing", 2, 30*time.Second)
	if c := calls[1]; c.id != failed || c.headers.Get("X-Attempt") != "1" {
		t.Errorf("failing's second call: id %s attempt %s, want the original %s again, attempt 1",
			c.id, c.headers.Get("X-Attempt"), failed)
	}
	for _, fn := range []string{"ok", "failing", "new"} {
		waitQueueCounts(t, node, names.Queue(fn), queueCounts{})
	}
	if n := logs.count("connected to RabbitMQ"); n != 2 {
		t.Errorf("%d broker sessions, want 2", n)
	}
	if out, err := node.Eval(ctx, `rabbit_alarm:get_alarms().`); err != nil || !strings.Contains(out, "memory") {
		t.Fatalf("the memory alarm is no longer raised (%s %v): the test proves nothing", out, err)
	}

	// Once the alarm clears, a copy goes out on the new publishing
	// connection, and "new" gets its next event.
	if err := node.ClearMemoryAlarm(ctx); err != nil {
		t.Fatal(err)
	}
	next := publishConfirmed(t, node.URL(), names, failingTopic, 1)[0]
	later := publishConfirmed(t, node.URL(), names, newTopic, 1)[0]
	if calls := gw.waitCalls(t, "new", 2, 10*time.Second); calls[1].id != later {
		t.Errorf("new's second call is for %s, want %s", calls[1].id, later)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(gw.callsOf("failing"), func(c call) bool {
		return c.id == next && c.headers.Get("X-Attempt") == "2"
	}) {
		if time.Now().After(deadline) {
			t.Fatalf("no retry of %s after the alarm: %v", next, ids(gw.callsOf("failing")))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The declaration of the function's queues that follows a returned copy (a
// queue deleted while the connector ran) is given up after InvokeTimeout
// when the broker does not answer it, as one that stopped reading the
// publishing connection since (a resource alarm raised meanwhile) does not:
// the delivery is requeued and invoked again within seconds, in the same
// session. The connector reaches the broker through a proxy that makes the
// publishing connection deaf as the broker returns the copy. Until
// 2026-12-05 the declaration waited with no deadline of its own, until the
// broker's heartbeat timeout closed the deaf connection (20 s and more),
// holding the delivery and every other copy of the function.
func TestAnUnansweredDeclarationIsGivenUpAfterInvokeTimeout(t *testing.T) {
	e := setup(t, "noretry")
	proxy := tcpproxy.New(t, "127.0.0.1:5672")
	e.cfg.BrokerURL = "amqp://guest:guest@" + proxy.Addr() + "/"
	e.cfg.InvokeTimeout = 2 * time.Second
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("noretry", topic, failFirst(1))
	logs := &logRecorder{}
	e.startLogging(t, slog.New(logs))
	waitConsumed(t, e, e.names.Queue("noretry"))
	if _, err := e.ch.QueueDelete(e.names.Retry("noretry", e.cfg.Delays()[0]), false, false, false); err != nil {
		t.Fatal(err)
	}
	pub := proxy.Conn(t, 1)
	pub.DeafAfter(isBasicReturn)

	id := e.publish(t, topic)
	first := e.gw.waitCalls(t, "noretry", 1, 10*time.Second)[0]
	// InvokeTimeout for the copy and its declaration, and a margin: far
	// below the heartbeat timeout that otherwise ends the wait.
	second := e.gw.waitCalls(t, "noretry", 2, e.cfg.InvokeTimeout+4*time.Second)[1]
	pub.WaitSwallowed(t, 1) // the declaration was sent, and not heard
	if second.id != id || second.headers.Get("X-Attempt") != "1" {
		t.Errorf("second call: id %s attempt %s, want the original %s again, attempt 1", second.id, second.headers.Get("X-Attempt"), id)
	}
	t.Logf("invoked again %s after the first call", second.at.Sub(first.at).Round(time.Millisecond))
	if n := logs.count("a queue of the function was missing, declaring its queues again"); n != 1 {
		t.Errorf("%d declarations after a returned copy, want 1", n)
	}
	if n := logs.count("could not schedule retry, requeueing"); n != 1 {
		t.Errorf("%d copies given up, want 1", n)
	}
	if n := logs.count("connected to RabbitMQ"); n != 1 {
		t.Errorf("%d broker sessions, want 1: the session was lost, not the declaration given up", n)
	}
}

// isBasicReturn says whether b holds an AMQP 0-9-1 basic.return method
// frame: frame type 1, a channel and a size, then class 60, method 50.
func isBasicReturn(b []byte) bool {
	for i := 0; i+11 <= len(b); i++ {
		if b[i] == 1 && bytes.Equal(b[i+7:i+11], []byte{0, 60, 0, 50}) {
			return true
		}
	}
	return false
}
