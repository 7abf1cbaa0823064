package telemetry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shopfaas/shop/internal/telemetry"
)

// A Redis command made inside a request becomes a client span of the
// request's trace, named after the command, without its arguments.
func TestRedisHookTracesCommands(t *testing.T) {
	rec, rdb := tracedRedis(t)
	ctx, parent := otel.Tracer("test").Start(context.Background(), "request")
	key := "test:telemetry:" + parent.SpanContext().TraceID().String()
	if err := rdb.Set(ctx, key, "secret-cart-contents", 0).Err(); err != nil {
		t.Fatalf("Redis is required for this test: %v", err)
	}
	if err := rdb.Get(ctx, "test:telemetry:missing").Err(); err != redis.Nil {
		t.Fatalf("get missing: %v", err)
	}
	_ = rdb.Del(ctx, key).Err()
	parent.End()

	names := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		names[s.Name()] = s
	}
	set, ok := names["redis set"]
	if !ok {
		t.Fatalf("no span for SET among %v", rec.Ended())
	}
	if set.Parent().SpanID() != parent.SpanContext().SpanID() || set.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Error("the Redis span is not a child of the request's span")
	}
	for _, a := range set.Attributes() {
		if strings.Contains(a.Value.String(), "secret-cart-contents") || strings.Contains(a.Value.String(), key) {
			t.Errorf("span attribute %s leaks the command's arguments", a.Key)
		}
	}
	if get := names["redis get"]; get == nil || get.Status().Code != 0 {
		t.Errorf("a missing key must not mark the span failed: %+v", get)
	}
}

// TestRedisCommandsCostNothingToTraceWithoutExporter: when the process
// exports no spans, a command inside a request costs no more allocations
// than one outside any trace.
func TestRedisCommandsCostNothingToTraceWithoutExporter(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Redis; -short was asked for")
	}
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	if _, err := telemetry.Setup(t.Context(), "svc", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	rdb.AddHook(telemetry.RedisHook())
	t.Cleanup(func() { _ = rdb.Close() })
	traced, span := otel.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	get := func(ctx context.Context) func() {
		return func() {
			if err := rdb.Get(ctx, "test:telemetry:missing").Err(); err != redis.Nil {
				t.Fatalf("Redis is required for this test: %v", err)
			}
		}
	}
	get(traced)()
	plain := testing.AllocsPerRun(50, get(context.Background()))
	inTrace := testing.AllocsPerRun(50, get(traced))
	if inTrace > plain {
		t.Errorf("a command in a trace costs %.0f allocations, outside one %.0f: want no more", inTrace, plain)
	}
}

// A command made outside any trace (a function's build, which a readiness
// probe starts with its login PING outside any request's span; background
// work) makes no span: it would be a trace of its own, one Jaeger lists
// under the function for every probe that built it, with nothing around
// it. The database tracer does the same (internal/postgres). Until
// 2026-12-07 such a command was a root span.
func TestARedisCommandOutsideATraceMakesNoSpan(t *testing.T) {
	rec, rdb := tracedRedis(t)
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis is required for this test: %v", err)
	}
	if _, err := rdb.Pipelined(context.Background(), func(p redis.Pipeliner) error {
		p.Get(context.Background(), "test:telemetry:missing")
		p.Get(context.Background(), "test:telemetry:missing-too")
		return nil
	}); err != nil && err != redis.Nil {
		t.Fatalf("pipeline: %v", err)
	}
	for _, s := range rec.Ended() {
		t.Errorf("span %q of a command outside any trace (trace %s, parent %s)", s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID())
	}
	// Inside a trace, the same commands are still its spans.
	ctx, parent := otel.Tracer("test").Start(context.Background(), "request")
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var ping bool
	for _, s := range rec.Ended() {
		ping = ping || (s.Name() == "redis ping" && s.Parent().SpanID() == parent.SpanContext().SpanID())
	}
	if !ping {
		t.Errorf("no span of the PING made in a trace among %d", len(rec.Ended()))
	}
}

// tracedRedis is a client of the machine's Redis with the tracing hook, and
// the recorder of the spans it makes (the global tracer provider's, put back
// after the test); a -short run skips.
func tracedRedis(t *testing.T) (*tracetest.SpanRecorder, *redis.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Redis; -short was asked for")
	}
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	rdb.AddHook(telemetry.RedisHook())
	t.Cleanup(func() { _ = rdb.Close() })
	return rec, rdb
}
