package inbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/telemetry"
)

// MaxEvent is the largest event body a consumer reads (1 MiB).
const MaxEvent = 1 << 20

// Delivery is one decoded event delivered to a consumer function.
type Delivery struct {
	events.Envelope
	// EventID is the envelope id as a UUID, the inbox key.
	EventID uuid.UUID
}

// Events reads the events the RabbitMQ connector delivers to one consumer
// function, refusing any whose body the outbox relay did not sign: a caller
// that can reach the function (anyone holding the internal credential) cannot
// make it act on a forged event.
//
// Nor can it replay a genuine event once its record of having been processed
// may be gone: an event whose envelope time is older than the inbox retention
// (the relay prunes processed-event records past it, Prune; less for a while
// after a raise of it, Since) less MaxClockSkew, or more than MaxClockSkew ahead of this process's clock (a
// signer's clock ahead would stretch that window), is refused.
type Events struct {
	verifier *events.Verifier
	unsigned bool
	window   Window
	log      *slog.Logger
	// accepted throttles the warning for an unsigned event accepted (with
	// unsigned only): shared by the copies Since returns, so at most one
	// line a minute per function.
	accepted *telemetry.Repeats
}

// MaxClockSkew is how far apart the clocks of an event's producer, of its
// consumer and of the database that records it may be: an envelope time more
// than this ahead of the consumer's clock is refused, and an event is refused
// this long before its processed-event record may be pruned.
const MaxClockSkew = 5 * time.Minute

// NewEvents returns an Events checking signatures with verifier. With
// acceptUnsigned (EVENT_ACCEPT_UNSIGNED=true, for the upgrade of a deployment
// whose queues still hold events published before the relay signed them),
// an event without a signature is accepted; a wrong signature never is. It
// refuses events older than DefaultRetention and logs nothing; EventsConfig
// sets the retention configured and a logger.
func NewEvents(verifier *events.Verifier, acceptUnsigned bool) (Events, error) {
	if verifier == nil {
		return Events{}, errors.New("inbox: an event verifier is required")
	}
	return Events{verifier: verifier, unsigned: acceptUnsigned, window: Window{Retention: DefaultRetention},
		accepted: &telemetry.Repeats{}}, nil
}

// checkTime refuses an envelope time outside the window in which a
// duplicate is still recognised. Older than the window (the retention, or
// less after a raise, Window.At) less MaxClockSkew
// (its processed-event record may have been pruned, and a replay of a
// captured event would apply it again), or missing (the relay's envelopes
// always carry one, events.New), is fault.Invalid "event_expired", 422, which
// the connector dead-letters at once: no later delivery can change it. More
// than MaxClockSkew ahead of now (a signer's clock ahead would stretch the
// window) is fault.Unavailable "event_early", 503: it becomes valid once the
// clocks agree, so the connector retries it, and a dead letter of it can be
// replayed after fixing the clocks. Both are logged at warn with their reason.
func (e Events) checkTime(r *http.Request, d Delivery, now time.Time) error {
	age := now.Sub(d.Time)
	window := e.window.At(now) - MaxClockSkew
	var why string
	switch {
	case d.Time.IsZero():
		why = "the event has no time"
	case age > window:
		why = fmt.Sprintf("the event is older than the inbox retention allows (%s)", window)
	case age < -MaxClockSkew:
		why = fmt.Sprintf("the event's time is more than %s ahead of this clock", MaxClockSkew)
		if e.log != nil {
			e.log.WarnContext(r.Context(), "event refused: ahead of this clock", "event_id", d.EventID,
				"type", d.Type, "time", d.Time, "ahead", (-age).Round(time.Second).String(), "reason", why)
		}
		return fault.E(fault.Unavailable, fault.CodeEventEarly, why+": the producer's or this clock is wrong; retried until they agree")
	default:
		return nil
	}
	if e.log != nil {
		e.log.WarnContext(r.Context(), "event refused: outside the inbox retention", "event_id", d.EventID,
			"type", d.Type, "time", d.Time, "age", age.Round(time.Second).String(), "reason", why)
	}
	return fault.E(fault.Invalid, fault.CodeEventExpired, why+": it may have been processed already, and is not processed again")
}

// Read checks the request's events.SignatureHeader against its body, then
// reads the body as a CloudEvents envelope (internal/events) whose type is one
// of types and whose time is inside the inbox retention (Events). Every
// problem of the event is a 4xx fault: a missing or wrong signature is
// fault.Forbidden "invalid_signature" (retried, then dead-lettered); the
// others (fault.Malformed "invalid_event", fault.TooLarge, fault.Invalid
// "unsupported_event" and "event_expired") make the connector dead-letter the
// message at once instead of retrying what can never succeed, but for an
// event too far ahead of this clock: fault.Unavailable "event_early" (503),
// retried. A body that could not be read whole is fault.Unavailable (503),
// retried: the transfer failed, not the event (readBody). An unsigned event
// accepted (EVENT_ACCEPT_UNSIGNED=true) is logged at warn, at most once a
// minute (telemetry.RepeatInterval) with the count of those not logged since.
func (e Events) Read(r *http.Request, types ...string) (Delivery, error) {
	if e.verifier == nil {
		return Delivery{}, fault.Internalf("inbox: Events used without NewEvents")
	}
	body, err := readBody(r)
	if err != nil {
		return Delivery{}, err
	}
	unsigned := false
	switch err := e.verifier.Verify(body, r.Header.Get(events.SignatureHeader)); {
	case err == nil:
	case errors.Is(err, events.ErrUnsigned) && e.unsigned:
		unsigned = true
	default:
		return Delivery{}, fault.Wrap(err, fault.Forbidden, fault.CodeInvalidSignature,
			"the event is not signed by the outbox relay")
	}
	d, err := decodeDelivery(body, types)
	if err != nil {
		return Delivery{}, err
	}
	now := time.Now()
	if err := e.checkTime(r, d, now); err != nil {
		return Delivery{}, err
	}
	if unsigned {
		e.warnUnsigned(r, d, now)
	}
	return d, nil
}

// unsignedRisk is what EVENT_ACCEPT_UNSIGNED=true risks, and when to unset
// it: said at start-up and with each unsigned event logged.
const unsignedRisk = "EVENT_ACCEPT_UNSIGNED=true lets anyone holding the internal credential forge events; unset it once the queues hold no unsigned event (docs/production-checklist.md)"

// warnUnsigned logs an unsigned event accepted, throttled by e.accepted.
func (e Events) warnUnsigned(r *http.Request, d Delivery, now time.Time) {
	if e.log == nil { // accepted is set by NewEvents, which Read requires
		return
	}
	if ok, suppressed := e.accepted.Log("unsigned", now); ok {
		e.log.WarnContext(r.Context(), "event accepted without a signature: "+unsignedRisk,
			append([]any{"event_id", d.EventID, "type", d.Type}, telemetry.SuppressedAttrs(suppressed)...)...)
	}
}

// readBody reads the event's body. A body that could not be read whole (the
// transfer broke off or timed out: read_timeout) says nothing of the event,
// which the connector sends again whole: fault.Unavailable, retried. Until
// 2026-12-07 it was 400 invalid_event, and the connector dead-lettered a
// sound event at once.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, fault.E(fault.Malformed, fault.CodeInvalidEvent, "event body is required")
	}
	// fnserve's max_request_bytes (1 MiB by default, as MaxEvent) may cap
	// the body first: too large either way.
	body, err := fnhttp.ReadAtMost(r.Body, MaxEvent, "event")
	if err != nil && !fault.Is(err, fault.TooLarge, fault.CodeBodyTooLarge) {
		return nil, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "the event's body could not be read whole")
	}
	return body, err
}

func decodeDelivery(body []byte, types []string) (Delivery, error) {
	env, err := events.Decode(body)
	if err != nil {
		return Delivery{}, fault.Wrap(err, fault.Malformed, fault.CodeInvalidEvent, "body is not a valid event envelope")
	}
	id, err := uuid.Parse(env.ID)
	if err != nil || id == uuid.Nil {
		return Delivery{}, fault.Wrap(err, fault.Malformed, fault.CodeInvalidEvent, "event id must be a UUID")
	}
	for _, t := range types {
		if env.Type == t {
			return Delivery{Envelope: env, EventID: id}, nil
		}
	}
	return Delivery{}, fault.E(fault.Invalid, fault.CodeUnsupportedEvent, "this function does not handle events of type "+env.Type)
}

// DecodeData decodes the event's data into dst, tolerating fields this
// consumer does not know (producers may add fields within a version). A
// missing or malformed data is fault.Malformed "invalid_event".
func (d Delivery) DecodeData(dst any) error {
	if len(d.Data) == 0 || string(d.Data) == "null" {
		return fault.E(fault.Malformed, fault.CodeInvalidEvent, "event data is required")
	}
	if err := json.Unmarshal(d.Data, dst); err != nil {
		return fault.Wrap(err, fault.Malformed, fault.CodeInvalidEvent, "event data does not match its type")
	}
	return nil
}

// EventsConfig is a consumer function's event configuration.
type EventsConfig struct {
	// VerifyKey is the secret event-verify-key: the PEM public key(s) of the
	// outbox relay's event-signing-key.
	VerifyKey string
	// AcceptUnsigned is EVENT_ACCEPT_UNSIGNED (default false), for upgrading
	// a deployment whose queues still hold unsigned events (docs/events.md).
	AcceptUnsigned bool
	// Retention is INBOX_RETENTION (RetentionFrom), the outbox relay's
	// setting too: events older than it are refused (for a while after a
	// raise, older than the window RecordRetention returns, Events.Since).
	// The consumer records it (RecordRetention) so that the relay does not
	// prune sooner.
	Retention time.Duration
}

// EventsConfigFrom reads an EventsConfig from c; problems are collected in c.
func EventsConfigFrom(c *config.Reader) EventsConfig {
	return EventsConfig{VerifyKey: c.Secret("event-verify-key", "", false), AcceptUnsigned: c.Bool("EVENT_ACCEPT_UNSIGNED", false),
		Retention: RetentionFrom(c)}
}

// Events builds the Events of the configuration, logging refused events'
// times to log.
func (ec EventsConfig) Events(log *slog.Logger) (Events, error) {
	v, err := events.ParseVerifier(ec.VerifyKey)
	if err != nil {
		return Events{}, err
	}
	if err := CheckRetention(ec.Retention); err != nil {
		return Events{}, fmt.Errorf("INBOX_RETENTION: %w", err)
	}
	ev, err := NewEvents(v, ec.AcceptUnsigned)
	ev.window, ev.log = Window{Retention: ec.Retention}, log
	if err == nil && ec.AcceptUnsigned && log != nil {
		log.Warn("EVENT_ACCEPT_UNSIGNED=true: events without the outbox relay's signature are accepted: " + unsignedRisk)
	}
	return ev, err
}

// Since returns e reading events within w (Window.At): the window
// RecordRetention returned for e's retention, which is less than it for a
// while after a raise.
func (e Events) Since(w Window) Events {
	e.window = w
	return e
}
