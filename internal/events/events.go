// Package events defines the shop's domain events and their wire envelope:
// CloudEvents 1.0 in structured JSON mode, with the W3C traceparent as an
// extension attribute so one trace spans producer, broker and consumer.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Event types: past tense and versioned. They are also the RabbitMQ routing
// keys and the functions' `topic` annotations. Each has a subscribed function
// (internal/routes' TestEveryPublishedEventTypeHasASubscriber): an event no
// function reads would only wait in shop.unrouted and fire UnroutedEvents.
const (
	UserRegistered     = "user.registered.v1"
	ProductChanged     = "product.changed.v1"
	OrderPlaced        = "order.placed.v1"
	OrderPaymentFailed = "order.payment_failed.v1"
	OrderCancelled     = "order.cancelled.v1"
	StockChanged       = "stock.changed.v1"
)

// SpecVersion is the CloudEvents version of the envelope.
const SpecVersion = "1.0"

// Envelope is a CloudEvents 1.0 structured-mode JSON event.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	TraceParent     string          `json:"traceparent,omitempty"`
	TraceState      string          `json:"tracestate,omitempty"`
}

// New builds an envelope for data, with a UUIDv7 id, the current time and
// the trace context of ctx.
func New(ctx context.Context, source, typ, subject string, data any) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s data: %w", typ, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Envelope{}, fmt.Errorf("event id: %w", err)
	}
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	return Envelope{
		SpecVersion: SpecVersion, ID: id.String(), Source: source, Type: typ, Subject: subject,
		Time: time.Now().UTC(), DataContentType: "application/json", Data: raw,
		TraceParent: carrier.Get("traceparent"), TraceState: carrier.Get("tracestate"),
	}, nil
}

// Context returns ctx carrying the envelope's trace context, so a consumer's
// spans join the producer's trace. When ctx already carries a span of that
// same trace (the relay and the connector propagated it hop by hop through
// message and request headers), ctx is kept, so the consumer's spans hang
// under the delivery rather than directly under the producer.
func (e Envelope) Context(ctx context.Context) context.Context {
	carrier := propagation.MapCarrier{"traceparent": e.TraceParent, "tracestate": e.TraceState}
	extracted := otel.GetTextMapPropagator().Extract(ctx, carrier)
	own, theirs := trace.SpanContextFromContext(ctx), trace.SpanContextFromContext(extracted)
	if own.IsValid() && theirs.IsValid() && own.TraceID() == theirs.TraceID() {
		return ctx
	}
	return extracted
}

// Decode parses an envelope and checks the attributes every consumer relies on.
func Decode(body []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("decode event: %w", err)
	}
	if e.SpecVersion != SpecVersion || e.ID == "" || e.Type == "" || e.Source == "" {
		return e, fmt.Errorf("decode event: missing specversion 1.0, id, type or source")
	}
	return e, nil
}

// Types lists every event type the shop publishes, each constant above
// (TestTypesListsEveryEventType). The RabbitMQ connector
// unbinds the ones a function no longer subscribes to when it starts, so a
// topic removed while it was down does not stay bound.
func Types() []string {
	return []string{UserRegistered, ProductChanged, OrderPlaced, OrderPaymentFailed, OrderCancelled, StockChanged}
}
