package connector

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// requeued is the connector's shop_connector_requeued_total for fn and
// reason (0 before the first).
func requeued(t *testing.T, reg *prometheus.Registry, fn, reason string) float64 {
	t.Helper()
	v, _ := metricValue(t, reg, "shop_connector_requeued_total", map[string]string{"function": fn, "reason": reason})
	return v
}

// waitGoneRequeued waits until fn's three held deliveries (heldWithBacklog)
// are counted requeued as gone, 10 s at most after fn left the gateway's list.
func waitGoneRequeued(t *testing.T, reg *prometheus.Registry, fn string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for requeued(t, reg, fn, requeueGone) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("shop_connector_requeued_total{reason=%q} = %v 10 s after %s left, want 3",
				requeueGone, requeued(t, reg, fn, requeueGone), fn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// heldWithBacklog starts a connector invoking fn one delivery at a time,
// its answers held back, with four events published: one is being invoked
// and the client holds the three others (the queue has none ready).
func heldWithBacklog(t *testing.T, e *env, fn string) (reg *prometheus.Registry, stop func(), release chan struct{}) {
	t.Helper()
	topic := e.names.Prefix + "order.placed.v1"
	release = e.gw.setHeld(fn, topic)
	e.cfg.Concurrency = 1
	reg, stop = startConnector(t, e.cfg, slog.New(slog.DiscardHandler))
	e.gw.synced(t)
	for range 4 {
		e.publish(t, topic)
	}
	e.gw.waitCalls(t, fn, 1, 10*time.Second)
	// Subscribed, the function's requeue series exist at 0, so that a
	// rate over them has data before the first requeue (the dashboard's
	// panel; 2d49c75d).
	for _, why := range []string{requeueStop, requeueGone} {
		labels := map[string]string{"function": fn, "reason": why}
		if v, ok := metricValue(t, reg, "shop_connector_requeued_total", labels); !ok || v != 0 {
			t.Fatalf("shop_connector_requeued_total%v once subscribed: %v (present %t), want 0", labels, v, ok)
		}
	}
	// The prefetch holds all four: none is ready.
	waitLenWithin(t, e, e.names.Queue(fn), 0, 10*time.Second)
	return reg, stop, release
}

// Every delivery a stopping connector puts back in the queue is counted,
// shop_connector_requeued_total{reason="stop"}: the invocation in flight,
// which a stopping connector lets run to its answer or InvokeTimeout (here
// the timeout) and then puts back without a copy, and the three deliveries
// it held uninvoked. On RabbitMQ 4 each is a delivery
// more against a quorum queue's delivery limit (docs/events.md, "RabbitMQ
// 4"), and until 2026-12-07 none was counted anywhere.
func TestEveryRequeueAtAStopIsCounted(t *testing.T) {
	t.Parallel()
	e := setup(t, "stopping")
	reg, stop, release := heldWithBacklog(t, e, "stopping")
	defer close(release)
	stop()
	if got := requeued(t, reg, "stopping", requeueStop); got != 4 {
		t.Errorf("shop_connector_requeued_total{reason=%q} = %v after the stop, want 4 (one timed out as the connector stopped, three held)", requeueStop, got)
	}
	// The broker requeues as it handles the nacks and the channel's close:
	// all 4 are back.
	waitLenWithin(t, e, e.names.Queue("stopping"), 4, 10*time.Second)
}

// A function that leaves the gateway's list has the deliveries the client
// held for it put back at once, counted as shop_connector_requeued_total
// {reason="gone"}; the invocation in flight is not cut, and not counted.
func TestTheRequeuesOfAGoneFunctionAreCounted(t *testing.T) {
	t.Parallel()
	e := setup(t, "leaving")
	reg, _, release := heldWithBacklog(t, e, "leaving")
	e.gw.remove("leaving")
	waitGoneRequeued(t, reg, "leaving")
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for invocations(t, reg, "leaving", "ok") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the invocation in flight was not acked within 10 s of its answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := requeued(t, reg, "leaving", requeueGone); got != 3 {
		t.Errorf("shop_connector_requeued_total{reason=%q} = %v, want 3 (the held deliveries only)", requeueGone, got)
	}
	if got := requeued(t, reg, "leaving", requeueStop); got != 0 {
		t.Errorf("shop_connector_requeued_total{reason=%q} = %v, want 0", requeueStop, got)
	}
}
