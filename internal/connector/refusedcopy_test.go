package connector

import (
	"net/http"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
)

// A copy the broker refuses at once (here its dead-letter queue is full and
// rejects publishes; in production a max-length policy with reject-publish,
// or a refused declaration) leaves the original to be redelivered, but not
// at once: the function was called again with no delay and the failure was
// never counted, a tight loop for as long as the cause lasted. The delivery
// waits (at most MaxBackoff) before it goes back, and is not lost: once the
// queue takes copies again the message is dead-lettered.
func TestARefusedCopyIsNotRedeliveredAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, "refused")
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("refused", topic, func(int) int { return http.StatusBadRequest })
	reg := e.start(t)
	e.gw.synced(t)
	dlq := e.names.DLQ("refused")
	if _, err := e.ch.QueueDelete(dlq, false, false, false); err != nil {
		t.Fatalf("delete %s: %v", dlq, err)
	}
	// A queue that takes nothing: every copy into it is nacked at once.
	if _, err := e.ch.QueueDeclare(dlq, true, false, false, false,
		amqp.Table{"x-max-length": 0, "x-overflow": "reject-publish"}); err != nil {
		t.Fatalf("declare the full %s: %v", dlq, err)
	}
	id := e.publish(t, topic)
	e.gw.waitCalls(t, "refused", 1, 5*time.Second)
	const watched = 2 * time.Second
	time.Sleep(watched)
	// RetryDelay (100 ms) is the wait before a requeue here: at most about
	// one call per wait, where the loop made hundreds.
	calls := len(e.gw.callsOf("refused"))
	if max := int(watched/e.cfg.RetryDelay) + 2; calls > max {
		t.Errorf("the function was called %d times in %s while its copies were refused, want at most %d", calls, watched, max)
	}
	if calls < 2 {
		t.Errorf("the function was called %d times in %s, want the delivery redelivered", calls, watched)
	}
	// The queue gone, the next copy is returned and the connector declares
	// it again: the message lands there.
	if _, err := e.ch.QueueDelete(dlq, false, false, false); err != nil {
		t.Fatalf("delete %s: %v", dlq, err)
	}
	waitLen(t, e, dlq, 1)
	// The dead letter is the event, with the headers of its one failure.
	// (The last call's id, checked here until 2026-12-07, could not differ:
	// the test publishes one event, and every call is for it.)
	msg, ok, err := e.ch.Get(dlq, true)
	if err != nil || !ok {
		t.Fatalf("get the dead letter from %s: %v (found %v)", dlq, err, ok)
	}
	if msg.MessageId != id || broker.HeaderInt(msg.Headers, broker.HeaderAttempts) != 1 ||
		broker.HeaderInt(msg.Headers, broker.HeaderLastStatus) != http.StatusBadRequest {
		t.Errorf("the dead letter is %s with headers %v, want %s after 1 attempt answered 400", msg.MessageId, msg.Headers, id)
	}
	// Each call whose copy was refused is counted, as a requeue: a
	// delivery more of the event (RabbitMQ 4 counts them against the
	// queue's delivery limit). The last call's copy was taken: a dead letter.
	deadline := time.Now().Add(5 * time.Second)
	for invocations(t, reg, "refused", "dead_letter") < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	calls = len(e.gw.callsOf("refused"))
	if got, dead := invocations(t, reg, "refused", "requeue"), invocations(t, reg, "refused", "dead_letter"); got != float64(calls-1) || dead != 1 {
		t.Errorf("%v requeues and %v dead letters counted for %d calls, want %d and 1", got, dead, calls, calls-1)
	}
}
