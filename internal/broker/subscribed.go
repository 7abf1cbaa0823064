package broker

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// WaitSubscribed waits until the queue of every function in functions has a
// consumer. The RabbitMQ connector binds a function's topics to its queue
// before it starts consuming it, so a consumer means every event published
// from then on reaches that function. An event published before then reaches
// only the functions already bound: a runtime that has just started is ready
// for orders once this returns, not once its functions answer.
func WaitSubscribed(ctx context.Context, url string, n Names, functions []string) error {
	var conn *amqp.Connection
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	for {
		var why string // what the last look found missing
		if conn == nil {
			c, err := Dial(ctx, url, "shop-wait-subscribed")
			if err != nil {
				why = err.Error()
			} else {
				conn = c
			}
		}
		if conn != nil {
			var err error
			if why, err = unsubscribed(conn, n, functions); err != nil {
				_ = conn.Close() // broken: dial again
				conn, why = nil, err.Error()
			} else if why == "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", why, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// unsubscribed says which function's queue has no consumer yet, the first in
// functions ("" when every one has).
func unsubscribed(conn *amqp.Connection, n Names, functions []string) (string, error) {
	for _, fn := range functions {
		ok, err := hasConsumer(conn, n.Queue(fn))
		if err != nil {
			return "", err
		}
		if !ok {
			return "no consumer on the queue of " + fn + " yet (is the RabbitMQ connector running?)", nil
		}
	}
	return "", nil
}

// hasConsumer reports whether queue exists and has a consumer, on a
// throwaway channel (a passive declare of a missing queue closes it).
func hasConsumer(conn *amqp.Connection, queue string) (bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return false, nil // not declared yet
	}
	return q.Consumers > 0, nil
}
