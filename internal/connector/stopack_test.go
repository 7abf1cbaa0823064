package connector

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// holdingProvider is a tracer provider whose delivery spans of one function
// (named "deliver <topic> to <fn>") hold their End until release is closed,
// after telling ended: the worker is then between the invocation's answer and
// its ack.
type holdingProvider struct {
	noop.TracerProvider
	suffix  string
	ended   chan struct{}
	release chan struct{}
}

func (p *holdingProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return holdingTracer{Tracer: p.TracerProvider.Tracer(name, opts...), p: p}
}

type holdingTracer struct {
	trace.Tracer
	p *holdingProvider
}

func (tr holdingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, sp := tr.Tracer.Start(ctx, name, opts...)
	if !strings.HasSuffix(name, tr.p.suffix) {
		return ctx, sp
	}
	sp = holdingSpan{Span: sp, p: tr.p}
	return trace.ContextWithSpan(ctx, sp), sp
}

type holdingSpan struct {
	trace.Span
	p *holdingProvider
}

func (s holdingSpan) End(opts ...trace.SpanEndOption) {
	s.Span.End(opts...)
	select {
	case s.p.ended <- struct{}{}:
	default:
	}
	<-s.p.release
}

// An invocation that succeeded as the connector stops is acked: stop waits
// for its workers before it closes the consuming channel. It closed the
// channel first, so an ack written after the close was dropped, the delivery
// went back to the queue, and the function was called again for an event it
// had handled. The worker is held between the answer and the ack (its
// delivery span's End) while the connector stops, and released once the
// stop logged that it waits for it. Not parallel: it sets
// OpenTelemetry's global tracer provider.
func TestASuccessAsTheConnectorStopsIsAcked(t *testing.T) {
	e := setup(t, "ackstop")
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("ackstop", topic, nil)
	p := &holdingProvider{suffix: " to ackstop", ended: make(chan struct{}, 1), release: make(chan struct{})}
	otel.SetTracerProvider(p)
	released := false
	release := func() {
		if !released {
			released = true
			close(p.release)
		}
	}
	t.Cleanup(func() {
		release()
		otel.SetTracerProvider(noop.NewTracerProvider())
	})

	logs := &logRecorder{}
	c, err := New(e.cfg, slog.New(logs), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		release() // a test that failed before its release must not wait on it
		<-done
	})
	e.gw.synced(t)
	id := e.publish(t, topic)
	select {
	case <-p.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the event was not invoked within 10 s")
	}
	// Answered 200; the worker has not acked yet. Stop the connector, and
	// let the worker go on once the stop has cancelled the consumer and
	// begun to wait for it (drainLog), where the old order had closed the
	// channel.
	cancel()
	waitLogged(t, logs, drainLog)
	release()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the connector had not stopped 10 s after its worker was released")
	}
	// A dropped ack puts the delivery back in the queue as the channel
	// closes; watch the queue a while.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n := e.queueLen(t, e.names.Queue("ackstop")); n != 0 {
			t.Fatalf("%d messages back in the queue after a successful invocation, want 0: its ack was dropped", n)
		}
	}
	if calls := e.gw.callsOf("ackstop"); len(calls) != 1 || calls[0].id != id {
		t.Errorf("calls %v, want the one call of %s", ids(calls), id)
	}
}
