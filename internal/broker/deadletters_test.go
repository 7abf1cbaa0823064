package broker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
)

// A replay of every dead letter ends, having replayed each message the DLQ
// held when it began once, even while each replayed message is dead-lettered
// again at once (as the connector does with an event the function refuses,
// 400 or 422). Until 2026-12-05 it read the DLQ until it was empty and
// replayed the messages coming back, over and over.
func TestAReplayOfEveryDeadLetterEndsWhileTheyComeBack(t *testing.T) {
	conn := dialRabbit(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	names, function := broker.Names{Prefix: "test-replay-" + hex.EncodeToString(b) + "."}, "refuses"
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{names.Queue(function), names.DLQ(function)} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if c, err := conn.Channel(); err == nil {
				_, _ = c.QueueDelete(q, false, false, false)
				_ = c.Close()
			}
		})
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 20
	for i := range n {
		c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", names.DLQ(function), false, false, amqp.Publishing{
			MessageId: fmt.Sprintf("evt-%d", i), DeliveryMode: amqp.Persistent, Body: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := c.WaitContext(ctx); err != nil || !ok {
			t.Fatalf("dead letter %d not confirmed: %v, %v", i, ok, err)
		}
	}

	// The refusing function: each message replayed to its queue is
	// dead-lettered again at once (at most 10 times each, so that a replay
	// that never ends still lets the test end), confirmed by the broker
	// before the delivery is acknowledged, as the connector does.
	consumer, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = consumer.Close() })
	if err := consumer.Confirm(false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := consumer.Consume(names.Queue(function), "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var refusals []error // dead-lettering again failed or was not confirmed
	go func() {
		for d := range deliveries {
			mu.Lock()
			seen[d.MessageId]++
			again := seen[d.MessageId] <= 10
			mu.Unlock()
			if again {
				err := deadLetterAgain(ctx, consumer, names.DLQ(function), d)
				if err != nil {
					mu.Lock()
					refusals = append(refusals, err)
					mu.Unlock()
				}
			}
			_ = d.Ack(false)
		}
	}()

	replayed, err := broker.ReplayDeadLetters(ctx, conn, names, function, "")
	if err != nil || replayed != n {
		t.Errorf("replay of every dead letter: %d replayed, %v; want %d, each once", replayed, err, n)
	}
	// Each message reaches the function once, and is back in the DLQ.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == n || time.Now().After(deadline) {
			break
		}
	}
	// Each refusal is confirmed before its delivery is acknowledged, but the
	// last acknowledgements may still be under way: wait for the count.
	var left int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left, err = broker.CountDeadLetters(conn, names, function)
		if err != nil || left >= n || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || left != n {
		t.Errorf("%d dead letters after the replay (%v), want the %d refused again, left for the next replay", left, err, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refusals) > 0 {
		t.Errorf("the refusing function could not dead-letter again: %v", refusals)
	}
	for i := range n {
		if id := fmt.Sprintf("evt-%d", i); seen[id] != 1 {
			t.Errorf("%s reached the function %d times, want 1", id, seen[id])
		}
	}
}

// deadLetterAgain publishes d to the DLQ q on ch, a channel in confirm mode,
// and waits for the broker's confirm, so that once d is acknowledged it is
// counted in q.
func deadLetterAgain(ctx context.Context, ch *amqp.Channel, q string, d amqp.Delivery) error {
	c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, amqp.Publishing{
		MessageId: d.MessageId, DeliveryMode: amqp.Persistent, Body: d.Body})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if ok, err := c.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("%s not confirmed: %v, %v", d.MessageId, ok, err)
	}
	return nil
}
