package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// The edge's server span is named by the method as http.request.method
// holds it: a standard one, upper-cased, and _OTHER for any other, the
// method as sent kept in http.request.method_original. Each span name is an
// operation of the kong service in Jaeger, which lists and indexes them; a
// request no route matches (any method reaches the global plugins) must not
// add an operation per method a client invents. fnserve's spans do the same
// (TestASpanNameTakesNoMethodACallerInvented). Until 2026-12-07 the edge's
// span took the request's method as it came.
func TestAnEdgeSpanNameTakesNoMethodAClientInvented(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	now := time.Now()
	srv := tracedPolicyEdge(t, &now, tp)
	type span struct{ Name, Method, Original string }
	var got []span
	for _, method := range []string{"POST", "FOO1", "FOO2", "get"} {
		spans.Reset()
		send(t, method, srv.URL+"/nowhere", nil)
		for _, s := range spans.GetSpans() {
			attrs := map[string]string{}
			for _, kv := range s.Attributes {
				attrs[string(kv.Key)] = fmt.Sprint(kv.Value.AsInterface())
			}
			got = append(got, span{s.Name, attrs["http.request.method"], attrs["http.request.method_original"]})
		}
	}
	want := []span{{"POST", "POST", ""}, {"_OTHER", "_OTHER", "FOO1"}, {"_OTHER", "_OTHER", "FOO2"}, {"GET", "GET", "get"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the edge's spans of unrouted requests (-want +got):\n%s", diff)
	}
}
