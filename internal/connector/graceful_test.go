package connector

import (
	"log/slog"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
)

// An invocation in flight when the connector is told to stop (SIGTERM: a
// redeploy, a node drain) runs to its answer, within InvokeTimeout, and is
// acked before the connector returns: the function is not called again for
// the event. Until 2026-12-08 a stop cancelled it at once: the request was
// cut while the function went on, the delivery went back to the queue, and
// the next consumer called the function a second time (notify-user sent an
// email twice). The deployment files give the connector a grace period above
// INVOKE_TIMEOUT for this wait (dev/deploycheck, dev/kubecheck).
func TestAnInvocationInFlightWhenTheConnectorStopsIsNotCut(t *testing.T) {
	t.Parallel()
	e := setup(t, "stopping")
	topic := e.names.Prefix + "order.placed.v1"
	release := e.gw.setHeld("stopping", topic)
	logs := &logRecorder{}
	reg, stop := startConnector(t, e.cfg, slog.New(logs))
	e.gw.synced(t)
	id := e.publish(t, topic)
	e.gw.waitCalls(t, "stopping", 1, 10*time.Second) // running, its answer held back
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		stop()
	}()
	// The function answers well within InvokeTimeout (2 s), once the stop
	// began to wait for it (drainLog; the consumer stays registered until
	// the drain ends, so the broker does not show it); the stop ends with
	// its ack, not at drain's limit (InvokeTimeout and StopMargin), which a
	// drain that always slept its limit reached.
	waitLogged(t, logs, drainLog)
	close(release)
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		t.Fatal("the connector had not stopped 3 s after the invocation in flight answered (drain's limit is 7 s)")
	}
	e.gw.mu.Lock()
	cut := e.gw.cut["stopping"]
	e.gw.mu.Unlock()
	calls := e.gw.callsOf("stopping")
	if cut != 0 || len(calls) != 1 || calls[0].id != id {
		t.Errorf("%d calls %v, %d cut; want the one call, answered, not cut", len(calls), ids(calls), cut)
	}
	if n := invocations(t, reg, "stopping", "ok"); n != 1 {
		t.Errorf("%v invocations counted ok, want 1 (acked before the connector returned)", n)
	}
	if n := e.queueLen(t, e.names.Queue("stopping")); n != 0 {
		t.Errorf("%d messages back in the queue, want 0: the answered delivery was not acked", n)
	}
}

// A stop waits also for the invocation in flight of a function that left
// the gateway's list (a retired subscription), and its ack lands: until
// 2026-12-08 the stop waited only for the subscriptions still consuming, Run
// returned while the retired call ran, the connection closed under it, and
// its delivery went back to the queue for a second call.
func TestAStopWaitsForTheInvocationsOfARetiredSubscription(t *testing.T) {
	t.Parallel()
	e := setup(t, "retiring")
	reg, stop, release := heldWithBacklog(t, e, "retiring")
	e.gw.remove("retiring")
	waitGoneRequeued(t, reg, "retiring") // its subscription retired
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		stop()
	}()
	select {
	case <-stopped:
		t.Fatal("the connector stopped while the retired subscription's invocation still ran")
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		t.Fatal("the connector had not stopped 3 s after the retired invocation answered (drain's limit is 7 s)")
	}
	if n := invocations(t, reg, "retiring", "ok"); n != 1 {
		t.Errorf("%v invocations counted ok, want 1", n)
	}
	// The three requeued uninvoked wait in the queue; the answered one was
	// acked before the connection closed.
	waitLenWithin(t, e, e.names.Queue("retiring"), 3, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := e.queueLen(t, e.names.Queue("retiring")); n != 3 {
		t.Errorf("%d messages in the queue, want 3: the answered delivery was not acked", n)
	}
}

// A stop whose consuming connection is lost, before or during the wait,
// does not wait for invocations whose acks cannot land any more: drain
// returns at once, or with the connection's close, not at its limit
// (StopTimeout: InvokeTimeout and StopMargin, 7 s here).
func TestAStopWithTheConnectionLostDoesNotWaitItsLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, "lost")
	e.cfg.setDefaults()
	for _, lostBefore := range []bool{true, false} {
		conn, err := broker.Dial(t.Context(), e.cfg.BrokerURL, "shop-connector-test-lost")
		if err != nil {
			t.Fatal(err)
		}
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		c := &Connector{cfg: e.cfg, log: slog.New(slog.DiscardHandler)}
		s := neverAnswering(c, ch)
		if lostBefore {
			_ = conn.Close()
		} else {
			time.AfterFunc(300*time.Millisecond, func() { _ = conn.Close() })
		}
		start := time.Now()
		c.drain(map[string]*subscription{"lost": s}, conn, closed)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("connection lost before the stop: %t; drain took %s, want at most 2 s", lostBefore, took.Round(time.Millisecond))
		}
		s.wg.Done()
		_ = conn.Close()
	}
}

// neverAnswering is a subscription of c on ch with an invocation in flight
// that never ends until the caller calls s.wg.Done.
func neverAnswering(c *Connector, ch *amqp.Channel) *subscription {
	deliveries := make(chan amqp.Delivery)
	close(deliveries)
	s := &subscription{c: c, fn: "held", ch: ch, tag: "none", deliveries: deliveries, stopped: make(chan struct{})}
	s.wg.Add(1)
	return s
}

// A stop waits for the invocations in flight at most StopTimeout (STOP_TIMEOUT,
// 25 s in docker-compose.yml, where faasd kills the connector 30 s after its
// SIGTERM), then cuts them; until 2026-12-08 it always waited InvokeTimeout
// and StopMargin (40 s in docker-compose.yml), past faasd's kill.
func TestAStopWaitsAtMostStopTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t, "limit")
	e.cfg.StopTimeout = time.Second
	e.cfg.setDefaults()
	conn, err := broker.Dial(t.Context(), e.cfg.BrokerURL, "shop-connector-test-limit")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	s := neverAnswering(&Connector{cfg: e.cfg, log: slog.New(slog.DiscardHandler)}, ch)
	defer s.wg.Done()
	start := time.Now()
	s.c.drain(map[string]*subscription{"limit": s}, conn, closed)
	if took := time.Since(start); took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("drain took %s with an invocation that never answers, want StopTimeout (1 s)", took.Round(time.Millisecond))
	}
}

// A stop that reaches its limit cuts the invocations of a retired
// subscription with the others, and Run returns with none running: the cut
// delivery goes back to the queue, counted (reason stop), before Run
// returns. Until 2026-12-08 the retired call ran on past Run's return and
// the session's end, its ack met a closed connection, and the next consumer
// was handed the delivery again while it still ran.
func TestAStopAtItsLimitCutsTheRetiredInvocationsToo(t *testing.T) {
	t.Parallel()
	e := setup(t, "overdue")
	e.cfg.StopTimeout = 500 * time.Millisecond
	reg, stop, release := heldWithBacklog(t, e, "overdue")
	defer close(release)
	e.gw.remove("overdue")
	waitGoneRequeued(t, reg, "overdue") // its subscription retired
	stop()
	if n := requeued(t, reg, "overdue", requeueStop); n != 1 {
		t.Errorf("shop_connector_requeued_total{reason=%q} = %v once Run returned, want 1: the retired invocation was not cut with the stop", requeueStop, n)
	}
	if n := invocations(t, reg, "overdue", "ok"); n != 0 {
		t.Errorf("%v invocations counted ok, want 0 (held past the stop's limit)", n)
	}
}
