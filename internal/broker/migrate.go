package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// MigrateRetryQueues moves the messages waiting in the function's legacy
// classic retry queues (LegacyRetry, one per delay) to the quorum retry
// queue of the same delay, then deletes each legacy queue once it is empty.
// Each message is acknowledged on the legacy queue only after RabbitMQ
// confirmed its copy, so an interrupted migration duplicates at worst (the
// handlers are idempotent) and never loses; a moved message waits its full
// delay again. The copy is mandatory (PublishMandatory): where the quorum
// retry queue is missing, RabbitMQ returns it instead of confirming a copy
// it dropped, and the move stops with ErrReturned, the message left
// unacknowledged (so back in the legacy queue) and the legacy queue kept.
// Until 2026-12-06 the copy was not mandatory, and such a move acknowledged
// the message, deleted the legacy queue and lost it. A legacy queue that does
// not exist is skipped, so the call is cheap once the upgrade is done. Retry
// queues must already be declared (DeclareFunction). It returns how many
// messages were moved.
func MigrateRetryQueues(ctx context.Context, conn *amqp.Connection, n Names, function string, delays []time.Duration) (int, error) {
	moved := 0
	for _, d := range delays {
		m, err := migrateQueue(ctx, conn, n.LegacyRetry(function, d), n.Retry(function, d))
		moved += m
		if err != nil {
			return moved, err
		}
	}
	return moved, nil
}

func migrateQueue(ctx context.Context, conn *amqp.Connection, from, to string) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer func() { _ = ch.Close() }()
	// A passive declare of a missing queue closes the channel with 404.
	if _, err := ch.QueueDeclarePassive(from, true, false, false, false, nil); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return 0, nil
		}
		return 0, fmt.Errorf("inspect %s: %w", from, err)
	}
	if err := ch.Confirm(false); err != nil {
		return 0, err
	}
	// One copy at a time, and none after a return: no return piles up.
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	moved := 0
	for {
		d, ok, err := ch.Get(from, false)
		if err != nil {
			return moved, fmt.Errorf("read %s: %w", from, err)
		}
		if !ok {
			break
		}
		headers := amqp.Table{}
		for k, v := range d.Headers {
			if k != "x-death" {
				headers[k] = v
			}
		}
		// Not acknowledged on an error: closing the channel puts the
		// message back in the legacy queue, which stays.
		err = PublishMandatory(ctx, ch, returns, to, amqp.Publishing{
			Headers: headers, ContentType: d.ContentType, DeliveryMode: amqp.Persistent, MessageId: d.MessageId,
			Type: d.Type, Timestamp: d.Timestamp, AppId: d.AppId, Body: d.Body,
		})
		if err != nil {
			return moved, fmt.Errorf("move %s to %s: %w", d.MessageId, to, err)
		}
		if err := d.Ack(false); err != nil {
			return moved, err
		}
		moved++
	}
	// if-empty: a message that arrived meanwhile keeps the queue until the
	// next call (the broker refuses the delete and closes the channel).
	if _, err := ch.QueueDelete(from, false, true, false); err != nil {
		return moved, fmt.Errorf("delete %s: %w", from, err)
	}
	return moved, nil
}
