package events_test

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/events"
)

// useTraceContext installs the W3C propagator (as telemetry.Setup does) for
// the test and restores the previous one.
func useTraceContext(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
}

func TestTraceSurvivesTheEnvelope(t *testing.T) {
	useTraceContext(t)
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("test").Start(context.Background(), "produce")
	defer span.End()

	ev, err := events.New(ctx, "orders", events.OrderPlaced, "order-1", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if !strings.Contains(ev.TraceParent, sc.TraceID().String()) || !strings.Contains(ev.TraceParent, sc.SpanID().String()) {
		t.Fatalf("traceparent %q does not carry span %v", ev.TraceParent, sc)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	remote := trace.SpanContextFromContext(got.Context(context.Background()))
	if remote.TraceID() != sc.TraceID() || remote.SpanID() != sc.SpanID() || !remote.IsRemote() {
		t.Errorf("restored span context %v, want trace %v span %v", remote, sc.TraceID(), sc.SpanID())
	}
	if got.SpecVersion != "1.0" || got.Type != events.OrderPlaced || got.Subject != "order-1" || string(got.Data) != `{"n":1}` {
		t.Errorf("decoded %+v", got)
	}
}

func TestNewWithoutSpan(t *testing.T) {
	useTraceContext(t)
	ev, err := events.New(context.Background(), "users", events.UserRegistered, "", nil)
	if err != nil || ev.TraceParent != "" || ev.ID == "" {
		t.Errorf("New = %+v, %v", ev, err)
	}
	if _, err := events.New(context.Background(), "users", events.UserRegistered, "", make(chan int)); err == nil {
		t.Error("unencodable data accepted")
	}
}

func TestDecodeRejectsIncomplete(t *testing.T) {
	tests := map[string]string{
		"not json":         `{`,
		"empty object":     `{}`,
		"no id":            `{"specversion":"1.0","type":"a.b.v1","source":"s"}`,
		"no type":          `{"specversion":"1.0","id":"1","source":"s"}`,
		"no source":        `{"specversion":"1.0","id":"1","type":"a.b.v1"}`,
		"wrong version":    `{"specversion":"0.3","id":"1","type":"a.b.v1","source":"s"}`,
		"no specversion":   `{"id":"1","type":"a.b.v1","source":"s"}`,
		"id of wrong type": `{"specversion":"1.0","id":1,"type":"a.b.v1","source":"s"}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := events.Decode([]byte(body)); err == nil {
				t.Errorf("Decode(%s) accepted", body)
			}
		})
	}
	if _, err := events.Decode([]byte(`{"specversion":"1.0","id":"1","type":"a.b.v1","source":"s"}`)); err != nil {
		t.Errorf("minimal complete envelope refused: %v", err)
	}
}

// A consumer whose request already continues the event's trace (the relay
// and the connector propagated it hop by hop) keeps its own span; a request
// of another trace, or none, takes the envelope's.
func TestContextKeepsAPropagatedSpanOfTheSameTrace(t *testing.T) {
	useTraceContext(t)
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	pctx, produce := tp.Tracer("test").Start(context.Background(), "produce")
	ev, err := events.New(pctx, "orders", events.OrderPlaced, "o", 1)
	if err != nil {
		t.Fatal(err)
	}
	produce.End()
	deliverCtx, deliver := tp.Tracer("test").Start(pctx, "deliver")
	defer deliver.End()
	if got := trace.SpanContextFromContext(ev.Context(deliverCtx)); got.SpanID() != deliver.SpanContext().SpanID() {
		t.Errorf("a span of the same trace was replaced: got span %v, want %v", got.SpanID(), deliver.SpanContext().SpanID())
	}
	otherCtx, other := tp.Tracer("test").Start(context.Background(), "unrelated")
	defer other.End()
	if got := trace.SpanContextFromContext(ev.Context(otherCtx)); got.SpanID() != produce.SpanContext().SpanID() {
		t.Errorf("a span of another trace was kept: got span %v, want the producer's %v", got.SpanID(), produce.SpanContext().SpanID())
	}
}

// Types lists every event type constant of the package: the shop's
// producers write only those, and the route table's test checks that each
// listed type has a subscriber, so a type added here but not to Types could
// reach shop.unrouted unnoticed.
func TestTypesListsEveryEventType(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "events.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	eventType := regexp.MustCompile(`^[a-z_]+\.[a-z_]+\.v[0-9]+$`)
	var declared []string
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if v, err := strconv.Unquote(lit.Value); err == nil && eventType.MatchString(v) {
				declared = append(declared, v)
			}
		}
		return true
	})
	if len(declared) == 0 {
		t.Fatal("found no event type in events.go; is the pattern stale?")
	}
	types := events.Types()
	for _, typ := range declared {
		if !slices.Contains(types, typ) {
			t.Errorf("%s is declared in events.go but not listed by Types", typ)
		}
	}
	if len(types) != len(declared) {
		t.Errorf("Types lists %d types, events.go declares %d: %v", len(types), len(declared), declared)
	}
}
