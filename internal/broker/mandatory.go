package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrReturned is a mandatory message RabbitMQ returned: no queue of that
// name.
var ErrReturned = errors.New("the broker returned the message: no such queue")

// PublishMandatory sends msg to queue through the default exchange as a
// mandatory message and waits for its confirmation. ch is in confirm mode and
// returns is its NotifyReturn channel; the caller publishes one message at a
// time on ch. Without mandatory, RabbitMQ confirms a message it cannot route
// and drops it; with it, the message comes back (ErrReturned), and the caller
// keeps its copy. A closed channel of returns (ch closed) is amqp.ErrClosed.
//
// The copy carries its publishing sequence number (HeaderPublishSeq), which
// its return brings back: a return an earlier copy left (its wait cut, the
// return arriving after the drain below) is not this copy's. Until
// 2026-12-05 it was read as this one's, and a copy the broker had routed was
// declared for and sent a second time.
//
// The client drops a return its listener has no room for after blocking the
// connection's reader for 5 s (amqp091-go's notifyTimeout): a dropped return
// of the copy being published would make an unroutable copy look confirmed.
// returns needs room for the returns that can pile up between two publishes
// on ch, which only copies whose wait was cut leave.
func PublishMandatory(ctx context.Context, ch *amqp.Channel, returns <-chan amqp.Return, queue string, msg amqp.Publishing) error {
	// Returns left over from publishes whose wait was cut: dropped, so that
	// they keep no room in returns (they are never this message's).
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
	seq := int64(ch.GetNextPublishSeqNo())
	headers := make(amqp.Table, len(msg.Headers)+1)
	maps.Copy(headers, msg.Headers)
	headers[HeaderPublishSeq] = seq
	msg.Headers = headers
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
	// confirmation, and the client hands them over in that order.
	for {
		select {
		case r, open := <-returns:
			if !open {
				return amqp.ErrClosed
			}
			if got, _ := r.Headers[HeaderPublishSeq].(int64); got != seq {
				continue // an earlier copy's
			}
			return fmt.Errorf("%w (%s: %d %s)", ErrReturned, queue, r.ReplyCode, r.ReplyText)
		default:
			return nil
		}
	}
}
