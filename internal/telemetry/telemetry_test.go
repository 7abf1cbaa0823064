package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/shopfaas/shop/internal/telemetry"
	"github.com/shopfaas/shop/internal/telemetry/otlpsink"
)

func TestLoggerAddsRequestContext(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	ctx = telemetry.WithCallID(ctx, "call-42")

	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, "get-me", slog.LevelInfo).With("k", "v").WithGroup("g")
	log.InfoContext(ctx, "hello", "x", 1)
	log.DebugContext(ctx, "filtered out")
	log.Info("no context")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %s", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	got := map[string]any{"function": first["function"], "k": first["k"]}
	want := map[string]any{"function": "get-me", "k": "v"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	g, _ := first["g"].(map[string]any)
	wantG := map[string]any{"x": float64(1), "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(), "call_id": "call-42"}
	if diff := cmp.Diff(wantG, g); diff != "" {
		t.Errorf("request attributes (-want +got):\n%s", diff)
	}
	for _, k := range []string{"trace_id", "span_id", "call_id"} {
		if _, ok := second[k]; ok {
			t.Errorf("a line without context carries %s: %s", k, lines[1])
		}
		if g2, ok := second["g"].(map[string]any); ok {
			if _, ok := g2[k]; ok {
				t.Errorf("a line without context carries %s: %s", k, lines[1])
			}
		}
	}
}

func TestCallID(t *testing.T) {
	ctx := context.Background()
	if telemetry.WithCallID(ctx, "") != ctx || telemetry.CallID(ctx) != "" {
		t.Error("an empty call id changed the context")
	}
	if got := telemetry.CallID(telemetry.WithCallID(ctx, "c1")); got != "c1" {
		t.Errorf("CallID = %q", got)
	}
}

func TestSetupWithoutExporter(t *testing.T) {
	shutdown, err := telemetry.Setup(context.Background(), "svc", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestProviderExportsToTheEndpointOfGetenv(t *testing.T) {
	sink := otlpsink.Start(t)
	for _, tt := range []struct {
		name string
		env  map[string]string
	}{
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": sink.URL() + "/"}},
		{"traces endpoint wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.URL() + "/v1/traces"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := telemetry.NewProvider(t.Context(), "svc-"+tt.name, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("test").Start(t.Context(), "op")
			span.End()
			if err := tp.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, sp := range sink.Spans() {
				found = found || (sp.Service == "svc-"+tt.name && sp.Name == "op" && sp.TraceID == span.SpanContext().TraceID().String())
			}
			if !found {
				t.Fatalf("span not received: %v", sink.Spans())
			}
		})
	}
}
