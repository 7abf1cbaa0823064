package telemetry

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// RedisHook traces every Redis command (and pipeline) as a client span of
// the request's trace, with the database semantic conventions' db.system.name
// (redis) and db.operation.name (SET, PIPELINE). Only the command name is recorded, never its
// arguments, which may hold cart contents or keys of users. A command outside
// any trace (a build's login PING, which a readiness probe starts outside any
// request's span) makes no span, as internal/postgres's queries: it would be a
// trace of its own with nothing around it. When the process exports no spans
// (Exporting), commands make none. Add it with
// client.AddHook(telemetry.RedisHook()).
func RedisHook() redis.Hook { return redisHook{tracer: otel.Tracer(scope)} }

type redisHook struct{ tracer trace.Tracer }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !traced(ctx) {
			return next(ctx, cmd)
		}
		ctx, span := h.start(ctx, "redis "+cmd.Name(), cmd.Name())
		defer span.End()
		err := next(ctx, cmd)
		record(span, err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !traced(ctx) {
			return next(ctx, cmds)
		}
		ctx, span := h.start(ctx, "redis pipeline", "pipeline")
		span.SetAttributes(attribute.Int("db.redis.num_cmd", len(cmds)))
		defer span.End()
		err := next(ctx, cmds)
		record(span, err)
		return err
	}
}

// traced reports whether a command made with ctx is a span: the process
// exports spans and ctx is in a trace.
func traced(ctx context.Context) bool {
	return trace.SpanContextFromContext(ctx).IsValid() && Exporting()
}

func (h redisHook) start(ctx context.Context, name, op string) (context.Context, trace.Span) {
	return h.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.DBSystemNameRedis, semconv.DBOperationName(strings.ToUpper(op))))
}

// record marks span failed for a real error (a missing key, redis.Nil, is an
// answer, not a failure).
func record(span trace.Span, err error) {
	if err != nil && !errors.Is(err, redis.Nil) {
		span.RecordError(err)
		span.SetStatus(codes.Error, "redis command failed")
	}
}
