package connector

import (
	"log/slog"
	"testing"
	"time"
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
	reg, stop := startConnector(t, e.cfg, slog.New(slog.DiscardHandler))
	e.gw.synced(t)
	id := e.publish(t, topic)
	e.gw.waitCalls(t, "stopping", 1, 10*time.Second) // running, its answer held back
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		stop()
	}()
	// The function answers well within InvokeTimeout (2 s), after the stop
	// began.
	time.Sleep(300 * time.Millisecond)
	close(release)
	select {
	case <-stopped:
	case <-time.After(e.cfg.InvokeTimeout + 5*time.Second):
		t.Fatalf("the connector had not stopped %s after the stop began", e.cfg.InvokeTimeout+5*time.Second)
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
