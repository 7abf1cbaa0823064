package broker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
)

// A move whose quorum retry queue is missing loses nothing: RabbitMQ
// confirms a copy it cannot route and drops it, so the copy is mandatory and
// its return stops the move before the original is acknowledged; the legacy
// queue keeps the message, and the move goes through once the retry queue
// is declared. Until 2026-12-06 the copy was not mandatory: the move
// reported it moved, deleted the legacy queue, and the message was gone.
func TestAMoveToAMissingRetryQueueLosesNothing(t *testing.T) {
	conn := dialRabbit(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	names := broker.Names{Prefix: "test-migrate-" + hex.EncodeToString(b) + "."}
	const fn, delay = "moved", 20 * time.Second
	legacy, retry := names.LegacyRetry(fn, delay), names.Retry(fn, delay)
	admin, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := conn.Channel(); err == nil {
			_, _ = c.QueueDelete(legacy, false, false, false)
			_, _ = c.QueueDelete(retry, false, false, false)
			_ = c.Close()
		}
	})
	if _, err := admin.QueueDeclare(legacy, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dc, err := admin.PublishWithDeferredConfirmWithContext(ctx, "", legacy, true, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent, MessageId: "waiting", Body: []byte(`{"n":1}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("the legacy message was not confirmed: %v", err)
	}
	// queued is how many messages queue holds, or the error of its passive
	// declare (404 when it does not exist).
	queued := func(queue string) (int, error) {
		t.Helper()
		c, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		q, err := c.QueueDeclarePassive(queue, true, false, false, false, nil)
		return q.Messages, err
	}
	moved, err := broker.MigrateRetryQueues(ctx, conn, names, fn, []time.Duration{delay})
	if !errors.Is(err, broker.ErrReturned) || moved != 0 {
		t.Errorf("MigrateRetryQueues without the retry queue: moved=%d err=%v; want 0 and ErrReturned", moved, err)
	}
	if n, err := queued(legacy); err != nil || n != 1 {
		t.Fatalf("legacy queue after the move: %d messages, %v; want the message kept", n, err)
	}
	if _, err := admin.QueueDeclare(retry, true, false, false, false, names.RetryArgs(fn, delay)); err != nil {
		t.Fatal(err)
	}
	if moved, err := broker.MigrateRetryQueues(ctx, conn, names, fn, []time.Duration{delay}); err != nil || moved != 1 {
		t.Fatalf("MigrateRetryQueues with the retry queue: moved=%d err=%v; want 1, nil", moved, err)
	}
	if _, err := queued(legacy); err == nil {
		t.Errorf("the legacy queue is still there after its message moved")
	}
	if n, err := queued(retry); err != nil || n != 1 {
		t.Errorf("quorum retry queue: %d messages, %v; want the moved one", n, err)
	}
}
