package inbox

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
)

// MaxEvent is the largest event body a consumer reads (1 MiB).
const MaxEvent = 1 << 20

// Delivery is one decoded event delivered to a consumer function.
type Delivery struct {
	events.Envelope
	// EventID is the envelope id as a UUID, the inbox key.
	EventID uuid.UUID
}

// ReadDelivery reads the request body as a CloudEvents envelope
// (internal/events) whose type is one of types. Every problem is a 4xx fault
// (fault.Malformed "invalid_event", fault.TooLarge, fault.Invalid
// "unsupported_event"), so the connector dead-letters the message instead of
// retrying what can never succeed.
func ReadDelivery(r *http.Request, types ...string) (Delivery, error) {
	if r.Body == nil {
		return Delivery{}, fault.E(fault.Malformed, fault.CodeInvalidEvent, "event body is required")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxEvent+1))
	if err != nil {
		return Delivery{}, fault.Wrap(err, fault.Malformed, fault.CodeInvalidEvent, "could not read the event")
	}
	if len(body) > MaxEvent {
		return Delivery{}, fault.E(fault.TooLarge, fault.CodeBodyTooLarge, "event exceeds 1 MiB")
	}
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
