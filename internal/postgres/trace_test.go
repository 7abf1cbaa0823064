package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/telemetry"
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
		if !strings.HasPrefix(s.Name(), "SELECT ") || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			continue
		}
		found = true
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			if fmt.Sprint(a.Value.AsInterface()) == "user-secret" {
				t.Errorf("span attribute %s holds a query argument", a.Key)
			}
			attrs[string(a.Key)] = fmt.Sprint(a.Value.AsInterface())
		}
		db := strings.TrimPrefix(s.Name(), "SELECT ")
		for k, v := range map[string]string{"db.system.name": "postgresql", "db.operation.name": "SELECT",
			"db.namespace": db, "db.query.text": `SELECT length($1::text)`} {
			if attrs[k] != v || v == "" {
				t.Errorf("%s = %q, want %q", k, attrs[k], v)
			}
		}
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("kind %v, want client", s.SpanKind())
		}
	}
	if !found {
		t.Errorf("no SELECT <database> span under the request among %d spans", len(rec.Ended()))
	}
	// A batch is one round trip and one span, with every statement's text.
	ctx, parent = otel.Tracer("test").Start(context.Background(), "request")
	b := &pgx.Batch{}
	b.Queue(`SELECT length($1::text)`, "user-secret")
	b.Queue(`SELECT 2`)
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var batches int
	for _, s := range rec.Ended() {
		if !strings.HasPrefix(s.Name(), "BATCH ") || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			continue
		}
		batches++
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = fmt.Sprint(a.Value.AsInterface())
		}
		for k, v := range map[string]string{"db.operation.name": "BATCH", "db.operation.batch.size": "2",
			"db.namespace": strings.TrimPrefix(s.Name(), "BATCH "), "db.query.text": `SELECT length($1::text); SELECT 2`} {
			if attrs[k] != v || v == "" {
				t.Errorf("batch span: %s = %q, want %q", k, attrs[k], v)
			}
		}
	}
	if batches != 1 {
		t.Errorf("%d BATCH <database> spans under the request, want 1", batches)
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

// TestQueriesCostNothingToTraceWithoutExporter: when the process exports no
// spans, a query inside a request costs no more allocations than one outside
// any trace (no span, attributes or copy of the connection's configuration).
func TestQueriesCostNothingToTraceWithoutExporter(t *testing.T) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	if _, err := telemetry.Setup(t.Context(), "svc", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	pool := pgtest.Open(t, nil)
	traced, span := otel.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	query := func(ctx context.Context) func() {
		return func() {
			var n int
			if err := pool.QueryRow(ctx, `SELECT length($1::text)`, "x").Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
	}
	query(traced)() // prepare the statement
	plain := testing.AllocsPerRun(50, query(context.Background()))
	inTrace := testing.AllocsPerRun(50, query(traced))
	t.Logf("allocations per query: %.0f untraced, %.0f in a trace", plain, inTrace)
	if inTrace > plain {
		t.Errorf("a query in a trace costs %.0f allocations, outside one %.0f: want no more", inTrace, plain)
	}
}

// A batch sent inside a request (several statements, one round trip) becomes
// one client span "BATCH <database>" with every statement's text, their
// number, and none of their arguments.
func TestBatchesAreTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	pool := pgtest.Open(t, nil)

	ctx, parent := otel.Tracer("test").Start(context.Background(), "request")
	b := &pgx.Batch{}
	b.Queue(`SELECT length($1::text)`, "user-secret")
	b.Queue(`SELECT 2`)
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var batches int
	for _, s := range rec.Ended() {
		if !strings.HasPrefix(s.Name(), "BATCH ") {
			continue
		}
		batches++
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindClient {
			t.Errorf("batch span %q: parent %v, kind %v; want a client span under the request", s.Name(), s.Parent().SpanID(), s.SpanKind())
		}
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			if fmt.Sprint(a.Value.AsInterface()) == "user-secret" {
				t.Errorf("span attribute %s holds a query argument", a.Key)
			}
			attrs[string(a.Key)] = fmt.Sprint(a.Value.AsInterface())
		}
		for k, v := range map[string]string{"db.system.name": "postgresql", "db.operation.name": "BATCH",
			"db.namespace": strings.TrimPrefix(s.Name(), "BATCH "), "db.operation.batch.size": "2",
			"db.query.text": `SELECT length($1::text); SELECT 2`} {
			if attrs[k] != v || v == "" {
				t.Errorf("%s = %q, want %q", k, attrs[k], v)
			}
		}
	}
	if batches != 1 {
		t.Errorf("%d BATCH spans among %d, want 1", batches, len(rec.Ended()))
	}
}
