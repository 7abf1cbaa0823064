package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/telemetry"
)

// queryTracer makes every query made within a trace a client span of it,
// named and described by the OpenTelemetry database semantic conventions
// (v1.37): span "<OPERATION> <database>", db.system.name postgresql,
// db.operation.name, db.namespace, db.query.text with the SQL text (never
// the arguments, which hold user data), server.address and server.port.
// A batch is one span too (TraceBatchStart). When the process exports no
// spans (telemetry.Exporting), queries and batches make none.
type queryTracer struct{ tracer trace.Tracer }

func newQueryTracer() pgx.QueryTracer {
	return queryTracer{tracer: otel.Tracer("github.com/shopfaas/shop/postgres")}
}

// tracedQuery marks a context whose query span this tracer started.
type tracedQuery struct{}

func (t queryTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx // background work (polling, migrations) makes no root spans
	}
	if !telemetry.Exporting() {
		// Nothing would read the span: no id of it leaves the process, and
		// conn.Config() copies the connection's configuration.
		return ctx
	}
	op, _, _ := strings.Cut(strings.TrimSpace(data.SQL), " ")
	op = strings.ToUpper(strings.TrimSpace(op))
	cfg := conn.Config()
	ctx = context.WithValue(ctx, tracedQuery{}, true)
	ctx, _ = t.tracer.Start(ctx, op+" "+cfg.Database, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.DBSystemNamePostgreSQL, semconv.DBOperationName(op), semconv.DBNamespace(cfg.Database),
			semconv.DBQueryText(data.SQL), semconv.ServerAddress(cfg.Host), semconv.ServerPort(int(cfg.Port))))
	return ctx
}

func (t queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if ctx.Value(tracedQuery{}) == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, "query failed")
	}
	span.End()
}

// TraceBatchStart makes a batch sent within a trace one client span of it:
// "BATCH <database>", db.operation.name BATCH, db.operation.batch.size, and
// db.query.text with every statement's SQL text, in order, separated by "; "
// (never the arguments). A batch is one round trip, like a query.
func (t queryTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() || !telemetry.Exporting() || data.Batch == nil {
		return ctx // as for queries
	}
	texts := make([]string, len(data.Batch.QueuedQueries))
	for i, q := range data.Batch.QueuedQueries {
		texts[i] = strings.TrimSpace(q.SQL)
	}
	cfg := conn.Config()
	attrs := []attribute.KeyValue{semconv.DBSystemNamePostgreSQL, semconv.DBOperationName("BATCH"), semconv.DBNamespace(cfg.Database),
		semconv.DBQueryText(strings.Join(texts, "; ")), semconv.ServerAddress(cfg.Host), semconv.ServerPort(int(cfg.Port))}
	if len(texts) > 1 {
		attrs = append(attrs, semconv.DBOperationBatchSize(len(texts)))
	}
	ctx = context.WithValue(ctx, tracedQuery{}, true)
	ctx, _ = t.tracer.Start(ctx, "BATCH "+cfg.Database, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

// TraceBatchQuery records the error of a statement of a traced batch.
func (t queryTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if ctx.Value(tracedQuery{}) != nil && data.Err != nil {
		trace.SpanFromContext(ctx).RecordError(data.Err)
	}
}

// TraceBatchEnd ends a traced batch's span.
func (t queryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	if ctx.Value(tracedQuery{}) == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, "batch failed")
	}
	span.End()
}
