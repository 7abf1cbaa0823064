package broker

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrReturned is a mandatory message RabbitMQ returned: no queue of that
// name.
var ErrReturned = errors.New("the broker returned the message: no such queue")

// PublishMandatory sends msg to queue through the default exchange as a
// mandatory message and waits for its confirmation. ch is in confirm mode and
// returns is its NotifyReturn channel; the caller publishes one message at a
// time on ch, each with a MessageId of its own (a return is matched to its
// message by queue and MessageId). Without mandatory, RabbitMQ confirms a message it cannot route
// and drops it; with it, the message comes back (ErrReturned), and the caller
// keeps its copy. A closed channel of returns (ch closed) is amqp.ErrClosed.
func PublishMandatory(ctx context.Context, ch *amqp.Channel, returns <-chan amqp.Return, queue string, msg amqp.Publishing) error {
	// A return left over from a publish whose wait was cancelled is not
	// this message's.
	for drained := false; !drained; {
		select {
		case _, open := <-returns:
			if !open {
				return amqp.ErrClosed
			}
		default:
			drained = true
		}
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("broker nacked")
	}
	// RabbitMQ sends an unroutable mandatory message's return before its
	// confirmation, and the client hands them over in that order. A return
	// of another message — one published before whose wait was cut, arriving
	// after the drain above — is not this one's: it is skipped (a copy read
	// as returned was declared for and sent a second time).
	for {
		select {
		case r, open := <-returns:
			if !open {
				return amqp.ErrClosed
			}
			if r.RoutingKey != queue || r.MessageId != msg.MessageId {
				continue
			}
			return fmt.Errorf("%w (%s: %d %s)", ErrReturned, queue, r.ReplyCode, r.ReplyText)
		default:
			return nil
		}
	}
}
