package connector

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/proctest"
)

// An event published the moment broker.WaitSubscribed returns reaches every
// subscriber of its topic: the connector binds a function's topics before it
// consumes its queue. Published as soon as the connector starts instead,
// the first events reach only the functions bound so far (a chaos run once
// lost order.placed for update-product-stats that way).
func TestAnEventPublishedOnceSubscribedReachesEveryFunction(t *testing.T) {
	t.Parallel()
	fns := []string{"a", "b", "c", "d", "e", "f"}
	e := setup(t, fns...)
	topic := e.names.Prefix + "order.placed.v1"
	for _, fn := range fns {
		e.gw.set(fn, topic, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := broker.WaitSubscribed(ctx, rabbitURL, e.names, fns)
	cancel()
	if err == nil {
		t.Fatal("WaitSubscribed returned before any connector ran")
	}
	e.start(t)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := broker.WaitSubscribed(ctx, rabbitURL, e.names, fns); err != nil {
		t.Fatal(err)
	}
	id := e.publish(t, topic)
	for _, fn := range fns {
		got := e.gw.waitCalls(t, fn, 1, 10*time.Second)
		if got[0].id != id {
			t.Errorf("%s got %s, want %s", fn, got[0].id, id)
		}
	}
}

// A function whose queue the broker refuses (here a classic queue of its
// name, declared by hand: the connector's quorum declaration is
// PRECONDITION_FAILED) is left aside, and every other function is still
// consumed. Until 2026-12-07 the refusal ended the broker session, every
// function's consumer with it, and each reconnect met it again: no event
// reached any function.
func TestAFunctionWhoseQueueIsRefusedStopsNoOther(t *testing.T) {
	t.Parallel()
	e := setup(t, "clash", "fine")
	if _, err := e.ch.QueueDeclare(e.names.Queue("clash"), true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	clashTopic, fineTopic := e.names.Prefix+"order.cancelled.v1", e.names.Prefix+"order.placed.v1"
	e.gw.set("clash", clashTopic, nil)
	e.gw.set("fine", fineTopic, nil)
	logs := &proctest.Output{}
	reg := e.startLogging(t, slog.New(slog.NewTextHandler(logs, nil)))
	// Not consumed within 10 s: the refused queue of clash stopped it.
	waitConsumed(t, e, e.names.Queue("fine"))
	deadline := time.Now().Add(10 * time.Second)
	// Consumed for good, not between two failed refreshes: the event is
	// invoked once and acked.
	e.gw.synced(t)
	id := e.publish(t, fineTopic)
	calls := e.gw.waitCalls(t, "fine", 1, 10*time.Second)
	if calls[0].id != id {
		t.Errorf("fine was called with %s, want %s", calls[0].id, id)
	}
	for invocations(t, reg, "fine", "ok") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the event's invocation was not acked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(e.gw.callsOf("fine")); n != 1 {
		t.Errorf("fine was called %d times, want once", n)
	}
	// Refreshed again and again meanwhile (every 100 ms), on one session.
	e.gw.synced(t)
	if out := logs.String(); strings.Contains(out, "broker session ended") || !strings.Contains(out, "refused the function's queues") {
		t.Errorf("the connector's log, want no session ended and the refusal of clash's queues told:\n%s", out)
	}
}

// A refusal that lasts (clash's queue declared by hand) is logged at its
// first refresh and then at most once per refusalLogEvery, not at every
// refresh (5 s by default, 100 ms here), and every refused refresh is
// counted in shop_connector_refresh_errors_total. Until 2026-12-08 each
// refresh logged it at error again.
func TestAPersistentRefusalIsLoggedOnceAMinute(t *testing.T) {
	t.Parallel()
	e := setup(t, "clash")
	if _, err := e.ch.QueueDeclare(e.names.Queue("clash"), true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	e.gw.set("clash", e.names.Prefix+"order.cancelled.v1", nil)
	logs := &proctest.Output{}
	reg := e.startLogging(t, slog.New(slog.NewTextHandler(logs, nil)))
	refused := func() float64 {
		v, _ := metricValue(t, reg, "shop_connector_refresh_errors_total", nil)
		return v
	}
	logged := func() int { return strings.Count(logs.String(), "refused the function's queues") }
	// Ten refreshes at least: counted, or (before 2026-12-08) logged.
	for deadline := time.Now().Add(20 * time.Second); refused() < 10 && logged() < 10; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("within 20 s, %v refused refreshes counted and %d logged, want ten refreshes (one per 100 ms)", refused(), logged())
		}
	}
	if n := refused(); n < 10 {
		t.Errorf("%v refused refreshes counted in shop_connector_refresh_errors_total, want one per refresh", n)
	}
	if n := logged(); n != 1 {
		t.Errorf("the refusal logged %d times over ten refreshes or more, want once (then at most once a minute)", n)
	}
}
