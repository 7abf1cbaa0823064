package meili_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/meili"
	"github.com/shopfaas/shop/internal/search/meili/meilitest"
)

// Every Meilisearch call is a client span of the caller's trace and carries
// its traceparent, with the default client (catalogenv sets none), and a
// server that never answers fails the call at the client's timeout. Until
// 2026-12-03 the default was a plain http.Client: no span, no traceparent,
// so a slow search showed in the function's trace as a gap.
func TestCallsAreTracedAndBounded(t *testing.T) {
	prevProp, prevTP := otel.GetTextMapPropagator(), otel.GetTracerProvider()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTextMapPropagator(prevProp)
		otel.SetTracerProvider(prevTP)
	})

	var mu sync.Mutex
	var traceparents []string
	fake := meilitest.NewFake("test-key")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		traceparents = append(traceparents, r.Header.Get("traceparent"))
		mu.Unlock()
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ix, err := meili.New(meili.Config{URL: srv.URL, APIKey: "test-key"})
	if err != nil {
		t.Fatal(err)
	}
	// The function's server span (telemetry.Server) is the caller.
	ctx, server := tp.Tracer("test").Start(context.Background(), "search-products GET", trace.WithSpanKind(trace.SpanKindServer))
	defer server.End()
	traceID, spanID := server.SpanContext().TraceID(), server.SpanContext().SpanID()
	if err := ix.EnsureSettings(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Search(ctx, search.Query{Text: "kettle", Limit: 5}); err != nil {
		t.Fatal(err)
	}

	clients := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient && s.SpanContext().TraceID() == traceID && s.Parent().SpanID() == spanID {
			clients[s.SpanContext().SpanID().String()] = s
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(traceparents) < 3 { // settings, its task, the search
		t.Fatalf("%d requests, want at least 3", len(traceparents))
	}
	for i, tp := range traceparents {
		// 00-<trace id>-<span id>-01: the span id is the client span's.
		if len(tp) != 55 || tp[3:35] != traceID.String() || clients[tp[36:52]] == nil {
			t.Errorf("request %d: traceparent %q, want trace %s and one of the client spans %v", i, tp, traceID, clients)
		}
	}

	// A server that accepts the call and never answers: the default
	// client's timeout (5 s) ends it.
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stuck.Close)
	t.Cleanup(func() { close(release) }) // before Close, which waits for the handler
	slow, err := meili.New(meili.Config{URL: stuck.URL})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := slow.Search(context.Background(), search.Query{Text: "kettle", Limit: 5}); err == nil {
		t.Error("a search of a server that never answers succeeded")
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("a search of a server that never answers took %s, want the client's 5 s timeout", d)
	}
}
