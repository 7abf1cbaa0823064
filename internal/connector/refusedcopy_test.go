package connector

import (
	"net/http"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
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
	e.start(t)
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
	if got := e.gw.callsOf("refused"); got[len(got)-1].id != id {
		t.Errorf("the last call is for %s, want %s", got[len(got)-1].id, id)
	}
}
