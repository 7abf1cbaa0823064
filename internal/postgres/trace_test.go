package postgres_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// A query made inside a request becomes a client span of the request's trace
// with the SQL text but not its arguments.
func TestQueriesAreTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	pool := pgtest.Open(t, nil)

	ctx, parent := otel.Tracer("test").Start(context.Background(), "request")
	var n int
	if err := pool.QueryRow(ctx, `SELECT length($1::text)`, "user-secret").Scan(&n); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var found bool
	for _, s := range rec.Ended() {
		if s.Name() != "postgres SELECT" || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			continue
		}
		found = true
		for _, a := range s.Attributes() {
			if a.Value.String() == "user-secret" {
				t.Errorf("span attribute %s holds a query argument", a.Key)
			}
			if a.Key == "db.statement" && a.Value.AsString() != `SELECT length($1::text)` {
				t.Errorf("db.statement = %q", a.Value.AsString())
			}
		}
	}
	if !found {
		t.Errorf("no postgres SELECT span under the request among %d spans", len(rec.Ended()))
	}
	// Background queries (no request, no trace) make no root spans.
	before := len(rec.Ended())
	if err := pool.QueryRow(context.Background(), `SELECT 1`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if after := len(rec.Ended()); after != before {
		t.Errorf("a query outside any trace made %d spans", after-before)
	}
}
