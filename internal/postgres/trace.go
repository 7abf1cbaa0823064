package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// queryTracer makes every query made within a trace a client span of it, with
// the SQL text (never the arguments, which hold user data) and the database.
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
	op, _, _ := strings.Cut(strings.TrimSpace(data.SQL), " ")
	ctx = context.WithValue(ctx, tracedQuery{}, true)
	ctx, _ = t.tracer.Start(ctx, "postgres "+strings.ToUpper(op), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.name", conn.Config().Database),
			attribute.String("db.statement", data.SQL)))
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
