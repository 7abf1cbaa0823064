// Package broker holds the RabbitMQ topology shared by the outbox relay, the
// RabbitMQ connector and the dead-letter tool, so every process declares the
// same exchanges and queues with the same arguments (RabbitMQ refuses a
// redeclaration whose arguments differ).
package broker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultURL is the broker of a developer machine.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// PasswordSecret is the secret file whose content, when present, is the
// broker password: the processes read it from a file, so it is in no
// process's environment or command line (docker-compose.yml sets
// RABBITMQ_URL without it).
const PasswordSecret = "rabbitmq-password"

// URL is rawURL with password as its password when password is not empty
// (the user stays the URL's, guest when it names none).
func URL(rawURL, password string) (string, error) {
	if password == "" {
		return rawURL, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") {
		return "", fmt.Errorf("RABBITMQ_URL is not an amqp:// or amqps:// URL")
	}
	user := "guest"
	if u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, password)
	return u.String(), nil
}

// ContentType is the content type of every event message: a CloudEvents
// structured-mode JSON envelope.
const ContentType = "application/cloudevents+json"

// Headers the connector sets on retried and dead-lettered messages.
const (
	// HeaderAttempts counts the failed invocations of a message so far.
	HeaderAttempts = "shop-attempts"
	// HeaderLastStatus is the HTTP status of the last failed invocation (0 when
	// the gateway could not be reached).
	HeaderLastStatus = "shop-last-status"
	// HeaderLastError is a short reason for the last failure.
	HeaderLastError = "shop-last-error"
	// HeaderTopic keeps the original routing key (event type) once a message
	// travels through the default exchange to a retry queue or a DLQ.
	HeaderTopic = "shop-topic"
	// HeaderFunction names the function a dead letter was meant for.
	HeaderFunction = "shop-function"
	// HeaderFailedAt is when the message was dead-lettered (RFC 3339).
	HeaderFailedAt = "shop-failed-at"
	// HeaderPublishSeq is the publishing channel's sequence number of a
	// mandatory copy (PublishMandatory), which a return carries back: it
	// tells the copy's own return from one an earlier copy left.
	HeaderPublishSeq = "shop-publish-seq"
)

// Names are the exchange and queue names. Prefix is empty in production;
// tests set a unique prefix so they never touch each other's objects.
type Names struct {
	Prefix string
}

// Exchange is the durable topic exchange every event is published to, with
// the event type as routing key.
func (n Names) Exchange() string { return n.Prefix + "shop.events" }

// Unrouted is the fanout alternate exchange of Exchange and the durable queue
// bound to it: an event no function subscribes to lands there instead of
// vanishing.
func (n Names) Unrouted() string { return n.Prefix + "shop.unrouted" }

// Queue is the function's own durable quorum queue.
func (n Names) Queue(function string) string { return n.Prefix + "fn." + function }

// DLQ is where the function's messages go after the last failed attempt.
func (n Names) DLQ(function string) string { return n.Queue(function) + ".dlq" }

// Retry is the function's delay queue for delay: a durable quorum queue
// where messages wait for the queue's TTL and are then dead-lettered back to
// Queue(function) at least once (see RetryArgs). The delay is in the name, so
// changing the configured delays declares new queues instead of failing on
// mismatched arguments; so is the version (v2): the classic retry queues of
// earlier releases (LegacyRetry) had other arguments.
func (n Names) Retry(function string, delay time.Duration) string {
	return n.Queue(function) + ".retry.v2." + strconv.FormatInt(delay.Milliseconds(), 10) + "ms"
}

// LegacyRetry is the name of the classic retry queue earlier releases
// declared for delay (x-message-ttl, dead-lettering at most once).
// MigrateRetryQueues empties and deletes it.
func (n Names) LegacyRetry(function string, delay time.Duration) string {
	return n.Queue(function) + ".retry." + strconv.FormatInt(delay.Milliseconds(), 10) + "ms"
}

// RetryArgs are the arguments of the function's retry queue for delay. A
// classic queue dead-letters expired messages at most once: a message that
// expires while the broker stops, or while the target queue is unavailable,
// is dropped. A quorum queue with x-dead-letter-strategy=at-least-once keeps
// each expired message until the target queue confirmed it, across broker
// restarts and crashes; RabbitMQ (3.10+) honours that strategy only with
// x-overflow=reject-publish.
func (n Names) RetryArgs(function string, delay time.Duration) amqp.Table {
	return amqp.Table{
		"x-queue-type":              "quorum",
		"x-message-ttl":             delay.Milliseconds(),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": n.Queue(function),
		"x-dead-letter-strategy":    "at-least-once",
		"x-overflow":                "reject-publish",
	}
}

// DeclareExchange declares the events exchange with its alternate exchange
// and the unrouted queue. It is idempotent; both publishers and consumers
// call it so either may start first.
func DeclareExchange(ch *amqp.Channel, n Names) error {
	if err := ch.ExchangeDeclare(n.Unrouted(), amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", n.Unrouted(), err)
	}
	if _, err := ch.QueueDeclare(n.Unrouted(), true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return fmt.Errorf("declare queue %s: %w", n.Unrouted(), err)
	}
	if err := ch.QueueBind(n.Unrouted(), "", n.Unrouted(), false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", n.Unrouted(), err)
	}
	args := amqp.Table{"alternate-exchange": n.Unrouted()}
	if err := ch.ExchangeDeclare(n.Exchange(), amqp.ExchangeTopic, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare exchange %s: %w", n.Exchange(), err)
	}
	return nil
}

// DeclareFunction declares the function's quorum queue, its dead-letter
// queue and one quorum retry queue per delay (RetryArgs). Bindings are not
// touched. Call MigrateRetryQueues afterwards to move what the retry queues of
// an earlier release still hold.
func DeclareFunction(ch *amqp.Channel, n Names, function string, delays []time.Duration) error {
	if _, err := ch.QueueDeclare(n.Queue(function), true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return fmt.Errorf("declare queue %s: %w", n.Queue(function), err)
	}
	if _, err := ch.QueueDeclare(n.DLQ(function), true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return fmt.Errorf("declare queue %s: %w", n.DLQ(function), err)
	}
	for _, d := range delays {
		if _, err := ch.QueueDeclare(n.Retry(function, d), true, false, false, false, n.RetryArgs(function, d)); err != nil {
			return fmt.Errorf("declare queue %s: %w", n.Retry(function, d), err)
		}
	}
	return nil
}

// Heartbeat is the heartbeat interval Dial asks the broker for: a dead
// connection is noticed within a few of them, and a close given up on
// (amqp.Connection.CloseDeadline) may end up to one interval late.
const Heartbeat = 10 * time.Second

// Dial connects with a bounded handshake so an unreachable broker fails fast
// and the caller's backoff takes over. name is the connection's name on the
// broker (client property connection_name: rabbitmqctl list_connections
// user_provided_name, the management UI), so an operator tells the
// shop's connections apart.
func Dial(ctx context.Context, url, name string) (*amqp.Connection, error) {
	// amqp.DialConfig's parse error is net/url's, which quotes the whole
	// URL, password included: it reached the connector's WARN line at every
	// reconnect. This one names the variable, never its value.
	if _, err := amqp.ParseURI(url); err != nil {
		return nil, errors.New("connect to RabbitMQ: RABBITMQ_URL is not a valid amqp URL (percent-encode the password)")
	}
	deadline := 10 * time.Second
	if d, ok := ctx.Deadline(); ok && time.Until(d) < deadline {
		deadline = time.Until(d)
	}
	conn, err := amqp.DialConfig(url, amqp.Config{
		Heartbeat: Heartbeat,
		Locale:    "en_US",
		Dial:      amqp.DefaultDial(deadline),
		Properties: amqp.Table{
			"connection_name": name,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	return conn, nil
}

// Backoff is a capped exponential delay for reconnect loops.
type Backoff struct {
	// Min is the first delay (default 200 ms).
	Min time.Duration
	// Max caps the delay (default 10 s).
	Max time.Duration
	cur time.Duration
}

// Next returns the next delay: Min after a Reset, then twice the last, up to
// Max.
func (b *Backoff) Next() time.Duration {
	if b.Min <= 0 {
		b.Min = 200 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 10 * time.Second
	}
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	return b.cur
}

// Wait sleeps for the next delay or until ctx ends; it reports whether the
// caller should go on.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Reset makes the next Wait start again from Min, after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// HeaderInt reads an integer header that may have been encoded as any AMQP
// integer type.
func HeaderInt(h amqp.Table, key string) int {
	switch v := h[key].(type) {
	case int:
		return v
	case int8:
		return int(v)
	case int16:
		return int(v)
	case int32:
		return int(v)
	case int64:
		return int(v)
	case uint8:
		return int(v)
	case uint16:
		return int(v)
	case uint32:
		return int(v)
	case string:
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

// HeaderString reads a string header, or "".
func HeaderString(h amqp.Table, key string) string {
	switch v := h[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
