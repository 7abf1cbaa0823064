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

// queryTracer makes every query a client span of the request's trace, with
// the SQL text (never the arguments, which hold user data) and the database.
type queryTracer struct{ tracer trace.Tracer }

func newQueryTracer() pgx.QueryTracer {
	return queryTracer{tracer: otel.Tracer("github.com/shopfaas/shop/postgres")}
}

func (t queryTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	op, _, _ := strings.Cut(strings.TrimSpace(data.SQL), " ")
	ctx, _ = t.tracer.Start(ctx, "postgres "+strings.ToUpper(op), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.name", conn.Config().Database),
			attribute.String("db.statement", data.SQL)))
	return ctx
}

func (t queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	span := trace.SpanFromContext(ctx)
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, "query failed")
	}
	span.End()
}
