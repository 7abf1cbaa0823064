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
// A batch is one span of its own, "BATCH <database>", whose db.query.text is
// its statements joined by "; " and db.operation.batch.size their number.
// When the process exports no spans (telemetry.Exporting), queries make none.
type queryTracer struct{ tracer trace.Tracer }

var _ pgx.BatchTracer = queryTracer{}

// tracerScope is the instrumentation scope of the queries' spans: this
// package's import path, as every span's scope is (docs/observability.md).
const tracerScope = "github.com/shopfaas/shop/internal/postgres"

func newQueryTracer() pgx.QueryTracer {
	return queryTracer{tracer: otel.Tracer(tracerScope)}
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
	return t.start(ctx, conn, strings.ToUpper(strings.TrimSpace(op)), data.SQL)
}

// start begins the client span of operation op (query text sql) on conn.
func (t queryTracer) start(ctx context.Context, conn *pgx.Conn, op, sql string, attrs ...attribute.KeyValue) context.Context {
	cfg := conn.Config()
	ctx = context.WithValue(ctx, tracedQuery{}, true)
	ctx, _ = t.tracer.Start(ctx, op+" "+cfg.Database, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.DBSystemNamePostgreSQL, semconv.DBOperationName(op), semconv.DBNamespace(cfg.Database),
			semconv.DBQueryText(sql), semconv.ServerAddress(cfg.Host), semconv.ServerPort(int(cfg.Port))),
		trace.WithAttributes(attrs...))
	return ctx
}

// TraceBatchStart begins a batch's span, like TraceQueryStart a query's.
func (t queryTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if data.Batch == nil || !trace.SpanContextFromContext(ctx).IsValid() || !telemetry.Exporting() {
		return ctx
	}
	qs := data.Batch.QueuedQueries
	sqls := make([]string, len(qs))
	for i, q := range qs {
		sqls[i] = strings.TrimSpace(q.SQL)
	}
	return t.start(ctx, conn, "BATCH", strings.Join(sqls, "; "), semconv.DBOperationBatchSize(len(qs)))
}

// TraceBatchQuery records the error of a failing statement on the batch's span.
func (t queryTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if data.Err == nil || ctx.Value(tracedQuery{}) == nil {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, "query failed")
	}
}

// TraceBatchEnd ends a batch's span.
func (t queryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	t.TraceQueryEnd(ctx, nil, pgx.TraceQueryEndData{Err: data.Err})
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
