package connector

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
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
// counted in shop_connector_refresh_errors_total. A minute later by the
// connector's clock (a test's, moved on by hand) it is logged again with the
// refreshes refused meanwhile, and a refusal whose reason changes is logged
// at once. Until 2026-12-08 each refresh logged it at error again; until the
// clock was the connector's own, only the first line was checked.
func TestAPersistentRefusalIsLoggedOnceAMinute(t *testing.T) {
	t.Parallel()
	e := setup(t, "clash")
	if _, err := e.ch.QueueDeclare(e.names.Queue("clash"), true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	topic := e.names.Prefix + "order.cancelled.v1"
	e.gw.set("clash", topic, nil)
	logs := &proctest.Output{}
	clock := &stillClock{at: time.Now()}
	reg, _ := startConnector(t, e.cfg, slog.New(slog.NewTextHandler(logs, nil)), func(c *Connector) { c.now = clock.now })
	refused := func() float64 {
		v, _ := metricValue(t, reg, "shop_connector_refresh_errors_total", nil)
		return v
	}
	lines := func() []string {
		var out []string
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "refused the function's queues") {
				out = append(out, l)
			}
		}
		return out
	}
	waitUntil := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !done(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("within 20 s, not %s: %v refused refreshes counted, logged:\n%s", what, refused(), strings.Join(lines(), ""))
			}
		}
	}
	// Ten refreshes at least on a still clock: counted, or (before
	// 2026-12-08) logged.
	waitUntil("ten refreshes (one per 100 ms)", func() bool { return refused() >= 10 || len(lines()) >= 10 })
	if n := refused(); n < 10 {
		t.Errorf("%v refused refreshes counted in shop_connector_refresh_errors_total, want one per refresh", n)
	}
	if n := len(lines()); n != 1 {
		t.Fatalf("the refusal logged %d times over ten refreshes or more, want once (then at most once a minute)", n)
	}

	// A minute on: logged again, with the refreshes refused since the
	// first line.
	before := refused()
	clock.advance(refusalLogEvery)
	waitUntil("logged again a minute later", func() bool { return len(lines()) >= 2 })
	second := lines()[1]
	if n := since(t, second); float64(n) < before-1 {
		t.Errorf("the minute's repeat says %d refreshes refused since the first line, want %v at least:\n%s", n, before-1, second)
	}
	// And not again within the next minute.
	after := refused()
	waitUntil("five refreshes more", func() bool { return refused() >= after+5 })
	if n := len(lines()); n != 2 {
		t.Errorf("the refusal logged %d times within a minute of its repeat, want twice in all:\n%s", n, strings.Join(lines(), ""))
	}

	// Another reason, on the still clock: logged at once. The function is
	// left out of the gateway's list while its queue is swapped, so that
	// the connector never declares its queues in between: clash's own
	// queue is quorum, and its dead-letter queue, declared classic, is
	// refused instead.
	e.gw.remove("clash")
	e.gw.synced(t)
	if _, err := e.ch.QueueDelete(e.names.Queue("clash"), false, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ch.QueueDeclare(e.names.DLQ("clash"), true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	e.gw.set("clash", topic, nil)
	waitUntil("logged at once for another reason", func() bool { return len(lines()) >= 3 })
	third := lines()[2]
	if strings.Contains(second, e.names.DLQ("clash")) || !strings.Contains(third, e.names.DLQ("clash")) {
		t.Errorf("the third line does not name the refused dead-letter queue %s, or the second did:\n%s%s", e.names.DLQ("clash"), second, third)
	}
	if !strings.Contains(third, "refused_refreshes_since_logged=") {
		t.Errorf("the line of the changed reason does not say how many refreshes were refused since the last:\n%s", third)
	}
}

// since reads refused_refreshes_since_logged from a text log line.
func since(t *testing.T, line string) int {
	t.Helper()
	_, v, ok := strings.Cut(line, "refused_refreshes_since_logged=")
	if !ok {
		t.Fatalf("no refused_refreshes_since_logged in %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.Fields(v)[0]))
	if err != nil {
		t.Fatalf("refused_refreshes_since_logged in %q: %v", line, err)
	}
	return n
}

// stillClock is a test's clock: it moves only when advanced.
type stillClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *stillClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *stillClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = c.at.Add(d)
}
