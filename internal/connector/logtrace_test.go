package connector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/telemetry"
)

// The line that says a delivery failed (retry, then dead letter) carries the
// trace id of the message's traceparent, so an operator finds the event's
// trace from the log. Until 2026-12-03 it was logged with the subscription's
// context, not the delivery span's, and had no trace_id.
func TestAFailedDeliveryIsLoggedWithItsTraceID(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	e := setup(t, "down")
	e.cfg.MaxAttempts = 2
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("down", topic, func(int) int { return http.StatusServiceUnavailable })
	// A file takes the connector's concurrent writes whole (one per line).
	path := filepath.Join(t.TempDir(), "connector.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	e.startLogging(t, telemetry.NewLogger(f, "rabbitmq-connector", slog.LevelInfo))
	e.gw.synced(t)
	id := e.publish(t, topic)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736" // traceparent's
	var failed []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(failed) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		failed = failed[:0]
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("log line %q: %v", sc.Text(), err)
			}
			if line["msg"] == "invocation failed" {
				failed = append(failed, line)
			}
		}
	}
	if len(failed) != 2 {
		t.Fatalf("%d \"invocation failed\" lines, want 2 (retry, dead letter)", len(failed))
	}
	for i, next := range []string{"retry", "dead_letter"} {
		line := failed[i]
		if line["id"] != id || line["next"] != next || line["status"] != float64(http.StatusServiceUnavailable) {
			t.Errorf("line %d: %v, want event %s, next %s, status 503", i, line, id, next)
		}
		if line["trace_id"] != traceID || line["span_id"] == nil {
			t.Errorf("line %d: trace_id %v span_id %v, want the message's trace %s and the delivery's span", i, line["trace_id"], line["span_id"], traceID)
		}
	}
}

// A message without a traceparent header (a publisher other than the relay,
// which always sets it) whose envelope carries one is delivered in the
// envelope's trace: the delivery span is the child of the envelope's span,
// the invocation names the delivery span, and the function, which continues
// the request's trace and then the envelope's (events.Envelope.Context),
// stays in that one trace. Until 2026-12-07 the delivery span started a new
// trace, which the invocation carried, and the handler's work jumped back to
// the envelope's trace: two traces for one delivery.
func TestADeliveryWithoutATraceparentHeaderContinuesTheEnvelopesTrace(t *testing.T) {
	prevProp, prevTP := otel.GetTextMapPropagator(), otel.GetTracerProvider()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTextMapPropagator(prevProp)
		otel.SetTracerProvider(prevTP)
		_ = tp.Shutdown(context.Background())
	})

	e := setup(t, "ok")
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("ok", topic, nil)
	e.start(t)
	e.gw.synced(t)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7" // traceparent's
	id := "evt-no-traceparent-header"
	body := `{"specversion":"1.0","id":"` + id + `","source":"test","type":"` + topic +
		`","time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","data":{},"traceparent":"` + traceparent + `"}`
	err := e.ch.PublishWithContext(context.Background(), e.names.Exchange(), topic, false, false, amqp.Publishing{
		Headers: amqp.Table{"shop-signature": "ed25519=sig-of-" + id}, ContentType: broker.ContentType,
		DeliveryMode: amqp.Persistent, MessageId: id, Type: topic, Body: []byte(body),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := e.gw.waitCalls(t, "ok", 1, 10*time.Second)

	var deliver sdktrace.ReadOnlySpan
	deadline := time.Now().Add(5 * time.Second)
	for deliver == nil && time.Now().Before(deadline) {
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindConsumer {
				deliver = s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if deliver == nil {
		t.Fatal("no delivery span ended")
	}
	if deliver.SpanContext().TraceID().String() != traceID || deliver.Parent().SpanID().String() != parentID {
		t.Errorf("delivery span in trace %s under span %s, want the envelope's trace %s under its span %s",
			deliver.SpanContext().TraceID(), deliver.Parent().SpanID(), traceID, parentID)
	}
	// The function: its server span continues the request's traceparent,
	// its handler the envelope's (internal/inbox, events.Envelope.Context).
	fctx := otel.GetTextMapPropagator().Extract(context.Background(), propagation.HeaderCarrier(got[0].headers))
	fctx, server := tp.Tracer("test").Start(fctx, "ok POST", trace.WithSpanKind(trace.SpanKindServer))
	server.End()
	envl, err := events.Decode([]byte(got[0].body))
	if err != nil {
		t.Fatal(err)
	}
	_, handler := tp.Tracer("test").Start(envl.Context(fctx), "handle")
	handler.End()
	if s := server.(sdktrace.ReadOnlySpan); s.SpanContext().TraceID().String() != traceID ||
		s.Parent().SpanID() != deliver.SpanContext().SpanID() {
		t.Errorf("the function's span in trace %s under span %s (invocation traceparent %q), want the envelope's trace %s under the delivery span %s",
			s.SpanContext().TraceID(), s.Parent().SpanID(), got[0].headers.Get("traceparent"), traceID, deliver.SpanContext().SpanID())
	}
	if h := handler.SpanContext(); h.TraceID().String() != traceID {
		t.Errorf("the handler's span is in trace %s, want the envelope's %s", h.TraceID(), traceID)
	}
}

// A delivery span tells what the invocation got: the function's status when
// it answered, no status at all when it did not (a call cut at
// InvokeTimeout), and the exchange the delivery came through, amq.default for
// a retry (its TTL queue dead-letters through the default exchange, whose
// name is ""). Until 2026-12-07 an unanswered call's span said
// http.response.status_code=0 and a retry's destination was "". Not
// parallel: it sets OpenTelemetry's global tracer provider.
func TestADeliverySpanNamesItsExchangeAndOnlyAStatusThatCame(t *testing.T) {
	prevTP := otel.GetTracerProvider()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		_ = tp.Shutdown(context.Background())
	})

	e := setup(t, "flaky", "silent")
	e.cfg.MaxAttempts = 2
	e.cfg.InvokeTimeout = 300 * time.Millisecond
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("flaky", topic, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	never := e.gw.setHeld("silent", topic)
	t.Cleanup(func() { close(never) })
	e.start(t)
	e.gw.synced(t)
	e.publish(t, topic)

	// flaky: 503, then 200 on the retry; silent: no answer twice (dead-lettered).
	spans := func() map[string][]sdktrace.ReadOnlySpan {
		out := map[string][]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindConsumer {
				out[s.Name()] = append(out[s.Name()], s)
			}
		}
		return out
	}
	flaky, silent := "deliver "+topic+" to flaky", "deliver "+topic+" to silent"
	deadline := time.Now().Add(10 * time.Second)
	for got := spans(); len(got[flaky]) < 2 || len(got[silent]) < 2; got = spans() {
		if time.Now().After(deadline) {
			t.Fatalf("%d spans of flaky and %d of silent ended within 10 s, want 2 each", len(got[flaky]), len(got[silent]))
		}
		time.Sleep(20 * time.Millisecond)
	}
	attrs := func(s sdktrace.ReadOnlySpan) map[string]any {
		out := map[string]any{}
		for _, kv := range s.Attributes() {
			out[string(kv.Key)] = kv.Value.AsInterface()
		}
		return out
	}
	got := spans()
	for i, want := range []struct {
		status      int64
		destination string
	}{{503, e.names.Exchange()}, {200, "amq.default"}} {
		a := attrs(got[flaky][i])
		if a["http.response.status_code"] != want.status || a["messaging.destination.name"] != want.destination {
			t.Errorf("flaky's delivery %d: status %v, destination %q; want %d, %q",
				i+1, a["http.response.status_code"], a["messaging.destination.name"], want.status, want.destination)
		}
	}
	for i, s := range got[silent][:2] {
		if code, ok := attrs(s)["http.response.status_code"]; ok {
			t.Errorf("silent's delivery %d, unanswered: http.response.status_code %v, want none", i+1, code)
		}
	}
}
