package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
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
// When the process exports no spans (telemetry.Exporting), queries make none.
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
