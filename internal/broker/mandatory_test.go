package broker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
)

const rabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

// dialRabbit connects to the test RabbitMQ, closed when the test ends; the
// test is skipped under -short and fails without RabbitMQ.
func dialRabbit(t *testing.T) *amqp.Connection {
	t.Helper()
	if testing.Short() {
		t.Skip("needs RabbitMQ; -short was asked for")
	}
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		t.Fatalf("RabbitMQ is required for this test (%s): %v", rabbitURL, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// A return left by an earlier publish whose wait was cut (its message went
// to a missing queue) may arrive while the next message is being published:
// it is not that message's, even for the same queue and message id. Read as
// one, it made a copy that the broker had routed look returned, and the
// caller declared the queues again and sent it a second time.
func TestAnEarlierMessagesReturnIsNotTheNextOnes(t *testing.T) {
	conn := dialRabbit(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 8))
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	queue := "test-mandatory-" + hex.EncodeToString(b)
	if _, err := ch.QueueDeclare(queue, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := conn.Channel(); err == nil {
			_, _ = c.QueueDelete(queue, false, false, false)
		}
	})
	ctx := context.Background()
	// earlier publishes to q a copy whose wait is cut at once: its return,
	// if q does not exist, comes back while the next copy is sent.
	earlier := func(q, id string) {
		t.Helper()
		if _, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false,
			amqp.Publishing{MessageId: id, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	next := func(q, id string) error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return broker.PublishMandatory(pctx, ch, returns, q, amqp.Publishing{MessageId: id, Body: []byte("y")})
	}
	for i := range 20 {
		earlier(queue+"-missing", "earlier")
		if err := next(queue, "next"); err != nil {
			t.Fatalf("publish %d to a queue that exists: %v", i, err)
		}
	}
	// The same queue, declared right after the earlier copy was returned,
	// and the same message id (a redelivered message's copy): the earlier
	// copy's return is still not the next one's.
	admin, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		q := fmt.Sprintf("%s-late-%d", queue, i)
		earlier(q, "same")
		if _, err := admin.QueueDeclare(q, false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := next(q, "same"); err != nil {
			t.Fatalf("publish %d to a queue declared after the earlier copy was returned: %v", i, err)
		}
		if _, err := admin.QueueDelete(q, false, false, false); err != nil {
			t.Fatal(err)
		}
	}
	// Its own return is still told.
	if err := next(queue+"-missing", "own"); !errors.Is(err, broker.ErrReturned) {
		t.Fatalf("publish to a missing queue: %v, want ErrReturned", err)
	}
}
