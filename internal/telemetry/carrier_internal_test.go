package telemetry

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestHeaderCarrierIsOTelsHeaderCarrier: the W3C trace context and baggage
// propagators read and write the same through headerCarrier as through
// propagation.HeaderCarrier, headers in any case and repeated included.
func TestHeaderCarrierIsOTelsHeaderCarrier(t *testing.T) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	in := http.Header{}
	in.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	in.Set("tracestate", "shop=1,other=x")
	in.Add("baggage", "a=1")
	in.Add("Baggage", "b=2,c=3")
	in["x-not-canonical"] = []string{"v"}

	ours := prop.Extract(context.Background(), headerCarrier(in))
	theirs := prop.Extract(context.Background(), propagation.HeaderCarrier(in))
	if a, b := trace.SpanContextFromContext(ours), trace.SpanContextFromContext(theirs); !a.Equal(b) || !a.IsValid() {
		t.Errorf("span context %v, otel's carrier %v", a, b)
	}
	if a, b := members(baggage.FromContext(ours)), members(baggage.FromContext(theirs)); !cmp.Equal(a, b) || len(a) != 3 {
		t.Errorf("baggage %v, otel's carrier %v", a, b)
	}

	outOurs, outTheirs := http.Header{}, http.Header{}
	prop.Inject(ours, headerCarrier(outOurs))
	prop.Inject(theirs, propagation.HeaderCarrier(outTheirs))
	parsed := func(h http.Header) map[string]string {
		b, err := baggage.Parse(h.Get("Baggage"))
		if err != nil {
			t.Fatal(err)
		}
		return members(b)
	}
	if a, b := parsed(outOurs), parsed(outTheirs); !cmp.Equal(a, b) {
		t.Errorf("injected baggage %v, otel's carrier %v", a, b)
	}
	delete(outOurs, "Baggage") // its members' order is the baggage map's
	delete(outTheirs, "Baggage")
	if diff := cmp.Diff(outTheirs, outOurs); diff != "" {
		t.Errorf("injected headers (-otel's carrier +ours):\n%s", diff)
	}
	if got, want := headerCarrier(in).Keys(), propagation.HeaderCarrier(in).Keys(); len(got) != len(want) {
		t.Errorf("keys %v, otel's carrier %v", got, want)
	}
}

// members is a baggage's members by key.
func members(b baggage.Baggage) map[string]string {
	out := map[string]string{}
	for _, m := range b.Members() {
		out[m.Key()] = m.Value()
	}
	return out
}
