package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DeadLetter is a message in a function's dead-letter queue, as the
// connector left it there.
type DeadLetter struct {
	// ID is the event id (AMQP message id).
	ID string
	// Type is the event type.
	Type string
	// Topic is the routing key the message was first delivered with.
	Topic string
	// Attempts is the number of failed invocations.
	Attempts int
	// LastStatus is the HTTP status of the last invocation (0: no response).
	LastStatus int
	// LastError is the connector's short reason for the last failure.
	LastError string
	// FailedAt is when the message was dead-lettered (RFC 3339).
	FailedAt string
	// Headers are all AMQP headers.
	Headers amqp.Table
	// Body is the CloudEvents envelope.
	Body []byte
}

func deadLetter(d amqp.Delivery) DeadLetter {
	return DeadLetter{
		ID: d.MessageId, Type: d.Type, Topic: HeaderString(d.Headers, HeaderTopic),
		Attempts: HeaderInt(d.Headers, HeaderAttempts), LastStatus: HeaderInt(d.Headers, HeaderLastStatus),
		LastError: HeaderString(d.Headers, HeaderLastError), FailedAt: HeaderString(d.Headers, HeaderFailedAt),
		Headers: d.Headers, Body: d.Body,
	}
}

// CountDeadLetters returns the number of messages in the function's DLQ; a
// function that never had a queue has 0.
func CountDeadLetters(conn *amqp.Connection, n Names, function string) (int, error) {
	count, _, err := DeadLetterQueue(conn, n, function)
	return count, err
}

// DeadLetterQueue returns the number of messages in the function's DLQ and
// whether it exists: a function whose connector never declared its queues
// (not subscribed, or a misspelt name) has none.
func DeadLetterQueue(conn *amqp.Connection, n Names, function string) (count int, exists bool, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(n.DLQ(function), true, false, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("inspect %s: %w", n.DLQ(function), err)
	}
	return q.Messages, true, nil
}

// PeekDeadLetters returns up to limit messages of the function's DLQ without
// removing them: they are fetched unacknowledged and return to the queue when
// the channel closes. It reads at most limit messages, so it takes no
// context.
func PeekDeadLetters(conn *amqp.Connection, n Names, function string, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := walk(context.Background(), conn, n.DLQ(function), false, func(_ *amqp.Channel, d amqp.Delivery) (bool, bool, error) {
		out = append(out, deadLetter(d))
		return len(out) < limit, false, nil
	})
	return out, err
}

// FindDeadLetter returns the first message with id in the function's DLQ
// without removing it, and whether there is one. It stops at that message:
// the ones behind it are not fetched, which on a quorum queue would count a
// delivery against each (docs/runbooks/dead-letters.md). It also stops, with
// ctx's error, once ctx is done (walk).
func FindDeadLetter(ctx context.Context, conn *amqp.Connection, n Names, function, id string) (DeadLetter, bool, error) {
	var out DeadLetter
	found := false
	err := walk(ctx, conn, n.DLQ(function), false, func(_ *amqp.Channel, d amqp.Delivery) (bool, bool, error) {
		if d.MessageId != id {
			return true, false, nil
		}
		out, found = deadLetter(d), true
		return false, false, nil
	})
	return out, found, err
}

// ReplayDeadLetters moves the messages with id (every message when id is "")
// from the function's DLQ back to its queue with a fresh attempt count: every
// copy of the event, as a fault between a copy's publish and the original's
// ack (the connector's or a replay's) leaves two in the DLQ. Each
// message is removed from the DLQ only after RabbitMQ confirmed the copy, so
// a replay interrupted half-way duplicates at worst and never loses. The copy
// is mandatory: when the function's queue does not exist (deleted, the
// function gone), RabbitMQ returns it instead of confirming a message it
// dropped, and the message stays in the DLQ. A replay reads only the messages
// the DLQ held when it began (walk): one the function refuses again, which
// the connector dead-letters at once (400, 422) while the replay goes on, is
// left for the next replay, where a replay of every message read until the
// DLQ was empty and could replay such a message again and again. Once ctx
// is done it reads no further message (walk); the one whose copy it was
// awaiting then may be in both queues, as above.
func ReplayDeadLetters(ctx context.Context, conn *amqp.Connection, n Names, function, id string) (int, error) {
	t, err := ReplaySelected(ctx, conn, n, function, selectID(id))
	return t.Count, err
}

// selectID is the Selection of ReplayDeadLetters' and PurgeDeadLetters' id.
func selectID(id string) Selection {
	if id == "" {
		return Selection{}
	}
	return Selection{IDs: []string{id}}
}

// Selection picks the dead letters a replay or purge takes: those with one
// of IDs (any id when there is none), of Type (any when ""), dead-lettered
// before FailedBefore (any when zero). A filter takes only what it can
// judge: with FailedBefore, a message without a readable shop-failed-at
// header stays.
type Selection struct {
	// IDs are event ids.
	IDs []string
	// Type is the event type (AMQP type) or the routing key the message
	// was first delivered with (shop-topic).
	Type string
	// FailedBefore bounds shop-failed-at.
	FailedBefore time.Time
}

// Every reports whether s takes every message.
func (s Selection) Every() bool {
	return len(s.IDs) == 0 && s.Type == "" && s.FailedBefore.IsZero()
}

// Takes reports whether s takes the message d.
func (s Selection) Takes(d amqp.Delivery) bool {
	if len(s.IDs) > 0 && !slices.Contains(s.IDs, d.MessageId) {
		return false
	}
	if s.Type != "" && d.Type != s.Type && HeaderString(d.Headers, HeaderTopic) != s.Type {
		return false
	}
	if !s.FailedBefore.IsZero() {
		at, err := time.Parse(time.RFC3339Nano, HeaderString(d.Headers, HeaderFailedAt))
		if err != nil || !at.Before(s.FailedBefore) {
			return false
		}
	}
	return true
}

// Taken is what a replay or purge took: Count messages, ByID of each event
// id (nil for a purge of every message, which counts none by id).
type Taken struct {
	Count int
	ByID  map[string]int
}

func (t *Taken) add(id string) {
	t.Count++
	if t.ByID == nil {
		t.ByID = map[string]int{}
	}
	t.ByID[id]++
}

// ReplaySelected is ReplayDeadLetters of the messages sel takes, in one
// walk over the DLQ however many ids it names. The messages it reads and
// does not take return to the DLQ (unacknowledged, also when the connection
// is lost), so nothing but a confirmed replay leaves it.
func ReplaySelected(ctx context.Context, conn *amqp.Connection, n Names, function string, sel Selection) (Taken, error) {
	var taken Taken
	var returns chan amqp.Return // on walk's one channel, at its first message
	err := walk(ctx, conn, n.DLQ(function), true, func(ch *amqp.Channel, d amqp.Delivery) (bool, bool, error) {
		if returns == nil {
			returns = ch.NotifyReturn(make(chan amqp.Return, 1))
		}
		if !sel.Takes(d) {
			return true, false, nil
		}
		headers := amqp.Table{}
		maps.Copy(headers, d.Headers)
		for _, k := range []string{HeaderAttempts, HeaderLastStatus, HeaderLastError, HeaderFunction, HeaderFailedAt, "x-death"} {
			delete(headers, k)
		}
		err := PublishMandatory(ctx, ch, returns, n.Queue(function), amqp.Publishing{
			Headers: headers, ContentType: d.ContentType, DeliveryMode: amqp.Persistent, MessageId: d.MessageId,
			Type: d.Type, Timestamp: d.Timestamp, AppId: d.AppId, Body: d.Body,
		})
		if errors.Is(err, ErrReturned) {
			return false, false, fmt.Errorf("replay %s: %w: start the function's connector, which declares the queue, and replay again", d.MessageId, err)
		}
		if err != nil {
			return false, false, fmt.Errorf("replay %s not confirmed: %w", d.MessageId, err)
		}
		if err := d.Ack(false); err != nil {
			return false, false, err
		}
		taken.add(d.MessageId)
		return true, true, nil
	})
	return taken, err
}

// PurgeDeadLetters deletes the messages with id (every message when id is
// "") from the function's DLQ and returns how many were deleted: every copy
// of the event (see ReplayDeadLetters), so that none is left for a later
// replay of every message to hand the function. With ctx done it deletes
// nothing more and returns ctx's error (walk; an interrupted purge of an id
// may leave a copy it had not reached).
func PurgeDeadLetters(ctx context.Context, conn *amqp.Connection, n Names, function, id string) (int, error) {
	t, err := PurgeSelected(ctx, conn, n, function, selectID(id))
	return t.Count, err
}

// PurgeSelected is PurgeDeadLetters of the messages sel takes, in one walk
// over the DLQ however many ids it names (every message: one queue purge).
// The messages it reads and does not take return to the DLQ, as in
// ReplaySelected.
func PurgeSelected(ctx context.Context, conn *amqp.Connection, n Names, function string, sel Selection) (Taken, error) {
	if err := ctx.Err(); err != nil {
		return Taken{}, fmt.Errorf("purge %s: %w", n.DLQ(function), err)
	}
	if sel.Every() {
		ch, err := conn.Channel()
		if err != nil {
			return Taken{}, err
		}
		defer func() { _ = ch.Close() }()
		count, err := ch.QueuePurge(n.DLQ(function), false)
		return Taken{Count: count}, err
	}
	var taken Taken
	err := walk(ctx, conn, n.DLQ(function), false, func(_ *amqp.Channel, d amqp.Delivery) (bool, bool, error) {
		if !sel.Takes(d) {
			return true, false, nil
		}
		if err := d.Ack(false); err != nil {
			return false, false, err
		}
		taken.add(d.MessageId)
		return true, true, nil
	})
	return taken, err
}

// walk fetches the queue's messages one by one, unacknowledged, until visit
// says stop, the queue has no more, or it has fetched as many as the queue
// held when it began (its passive declare's count): a message added while it
// walks, behind those, is not visited, so a walk that settles what it visits
// ends even while others keep adding to the queue. visit reports whether it
// settled (acked) the message. The others return to the queue when the
// channel closes, which RabbitMQ does asynchronously, so walk waits (up to
// 5 s) until they are back, also when visit or a fetch failed or ctx was
// done: the next command then sees every message (until 2026-12-08 an error
// returned at once, and a list right after could count fewer). When they
// are not all back by then it returns ErrNotBack (after visit's or the
// fetch's error, if any), having read what it read: until 2026-12-08 it
// returned as if they were, and a message a quorum queue dropped at its
// delivery limit went unmentioned.
//
// It fetches no message once ctx is done, and returns ctx's error: an
// operator's Ctrl-C stops a walk over a large queue between two messages,
// where a walk that never looked at ctx went on (purging, replaying) for as
// long as the queue took to read, and deadletters' signal handler kept the
// interrupt from ending the process.
func walk(ctx context.Context, conn *amqp.Connection, queue string, confirm bool, visit func(*amqp.Channel, amqp.Delivery) (more, settled bool, err error)) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", queue, err)
	}
	settled, err := fetch(ctx, ch, queue, confirm, q.Messages, visit)
	_ = ch.Close()
	// Also after an error or an interrupt: the messages it held are on
	// their way back, and the operator's next command must count them.
	// A connection that failed has no channel to wait on; RabbitMQ
	// requeues them all the same.
	return errors.Join(err, waitReady(conn, queue, q.Messages-settled, 5*time.Second))
}

// ErrNotBack is walk's error when the messages it read and did not settle
// are not all ready in the queue again 5 s after its channel closed: another
// consumer took them, someone purged the queue meanwhile, or RabbitMQ
// dropped them (a quorum queue past its delivery limit: RabbitMQ 4 without
// the policy of docs/events.md). What the command did stands; the operator
// looks at the queue before the next.
var ErrNotBack = errors.New("the messages read are not all back in the queue")

// fetch gets up to limit messages of queue, each handed to visit, until ctx
// is done, and returns how many visit settled.
func fetch(ctx context.Context, ch *amqp.Channel, queue string, confirm bool, limit int, visit func(*amqp.Channel, amqp.Delivery) (bool, bool, error)) (int, error) {
	if confirm {
		if err := ch.Confirm(false); err != nil {
			return 0, err
		}
	}
	settled := 0
	for range limit {
		if err := ctx.Err(); err != nil {
			return settled, fmt.Errorf("read %s: interrupted: %w", queue, err)
		}
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return settled, fmt.Errorf("read %s: %w", queue, err)
		}
		if !ok {
			return settled, nil
		}
		more, done, err := visit(ch, d)
		if done {
			settled++
		}
		if err != nil || !more {
			return settled, err
		}
	}
	return settled, nil
}

// waitReady waits until queue holds at least want ready messages, and
// returns ErrNotBack when it does not within the time given.
func waitReady(conn *amqp.Connection, queue string, want int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		_ = ch.Close()
		if err != nil {
			return fmt.Errorf("inspect %s: %w", queue, err)
		}
		if q.Messages >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s holds %d ready message(s) %s after the read, want %d or more (another consumer, a purge, or a quorum queue's delivery limit: docs/runbooks/dead-letters.md)",
				ErrNotBack, queue, q.Messages, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
