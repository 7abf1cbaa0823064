package telemetry_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shopfaas/shop/internal/telemetry"
)

// spanView is what a trace backend shows of a span, the instrumentation
// scope aside.
type spanView struct {
	Name, Kind, Status, Description, Parent string
	Attrs                                   []string
}

func view(s sdktrace.ReadOnlySpan) spanView {
	v := spanView{Name: s.Name(), Kind: s.SpanKind().String(), Status: s.Status().Code.String(),
		Description: s.Status().Description, Parent: s.Parent().SpanID().String()}
	for _, kv := range s.Attributes() {
		v.Attrs = append(v.Attrs, string(kv.Key)+"="+kv.Value.String())
	}
	slices.Sort(v.Attrs)
	return v
}

// recordSpans installs a recording provider and the W3C propagator for the
// test.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return rec
}

// A panic that passes through the server span (fnserve cuts an answer that
// had begun with http.ErrAbortHandler) leaves it an error with status 500,
// named for the bundle's member that served, and goes on with the same value.
func TestServerSpanOfAPanicIsAnError(t *testing.T) {
	rec := recordSpans(t)
	name := func(op string, r *http.Request) string { return op + " " + r.Method }
	for _, p := range []any{http.ErrAbortHandler, "kaboom"} {
		h := telemetry.Server(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.(interface{ SetServedBy(string) }).SetServedBy("member")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "part")
			panic(p)
		}), "bundle", name)
		before := len(rec.Ended())
		func() {
			defer func() {
				if got := recover(); got != p {
					t.Errorf("panic %v: went on as %v", p, got)
				}
			}()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		}()
		spans := rec.Ended()[before:]
		if len(spans) != 1 {
			t.Fatalf("panic %v: %d spans", p, len(spans))
		}
		v := view(spans[0])
		if v.Name != "member GET" || v.Status != "Error" || !slices.Contains(v.Attrs, "http.response.status_code=500") ||
			!slices.Contains(v.Attrs, "faas.name=member") {
			t.Errorf("panic %v: span %+v, want member GET, Error, status 500", p, v)
		}
	}
}

// While spans are exported, telemetry.Server and telemetry.Client make the
// spans otelhttp v0.72 made (its handler with fnserve's span name, its
// transport): the same names, kinds, parents, statuses and attributes, for
// plain and routed requests, bodies, forwarded clients, odd methods and
// ports, informational and failing answers, a refused connection and a URL
// with a password.
func TestHTTPSpansMatchOtelhttp(t *testing.T) {
	rec := recordSpans(t)
	name := func(op string, r *http.Request) string { return op + " " + r.Method }
	handler := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Query().Get("answer") {
		case "500":
			http.Error(w, "broken", http.StatusInternalServerError)
		case "204":
			w.WriteHeader(http.StatusNoContent)
		case "103":
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "late")
		default:
			_, _ = io.WriteString(w, "hello")
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders/{id}", handler)
	mux.HandleFunc("/", handler)
	servers := map[string]http.Handler{
		"otelhttp": otelhttp.NewHandler(http.HandlerFunc(handler), "fn", otelhttp.WithSpanNameFormatter(name)),
		"ours":     telemetry.Server(http.HandlerFunc(handler), "fn", name),
	}
	routed := map[string]http.Handler{
		"otelhttp": otelhttp.NewHandler(mux, "fn", otelhttp.WithSpanNameFormatter(name)),
		"ours":     telemetry.Server(mux, "fn", name),
	}
	requests := []func() *http.Request{
		func() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) },
		func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "http://shop.example:8080/function/x?answer=500", strings.NewReader(`{"a":1}`))
			r.Header.Set("User-Agent", "test/1")
			r.Header.Set("X-Forwarded-For", "203.0.113.9, 10.0.0.1")
			r.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
			return r
		},
		func() *http.Request { return httptest.NewRequest("get", "http://[::1]:80/x?answer=204", nil) },
		func() *http.Request { return httptest.NewRequest("PURGE", "https://h/x?answer=103", nil) },
		func() *http.Request { return httptest.NewRequest(http.MethodPost, "/orders/7", strings.NewReader("x")) },
	}
	for i, mk := range requests {
		for _, set := range []map[string]http.Handler{servers, routed} {
			got := map[string][]spanView{}
			for _, impl := range []string{"otelhttp", "ours"} {
				before := len(rec.Ended())
				set[impl].ServeHTTP(httptest.NewRecorder(), mk())
				for _, s := range rec.Ended()[before:] {
					got[impl] = append(got[impl], view(s))
				}
			}
			if len(got["ours"]) != 1 {
				t.Fatalf("request %d: %d spans", i, len(got["ours"]))
			}
			if i == 1 {
				t.Logf("server span: %+v", got["ours"][0])
			}
			if diff := cmp.Diff(got["otelhttp"], got["ours"]); diff != "" {
				t.Errorf("request %d: server span (-otelhttp +ours):\n%s", i, diff)
			}
		}
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") == "" {
			t.Error("no traceparent sent")
		}
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	clients := map[string]*http.Client{
		"otelhttp": {Transport: otelhttp.NewTransport(http.DefaultTransport)},
		"ours":     {Transport: telemetry.Client(http.DefaultTransport)},
	}
	calls := []func() *http.Request{
		func() *http.Request { r, _ := http.NewRequest(http.MethodGet, srv.URL+"/ok", nil); return r },
		func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, strings.Replace(srv.URL, "http://", "http://user:secret@", 1)+"/missing", strings.NewReader("{}"))
			return r
		},
		func() *http.Request { r, _ := http.NewRequest(http.MethodGet, closed.URL+"/", nil); return r },
	}
	for i, mk := range calls {
		got := map[string][]spanView{}
		for _, impl := range []string{"otelhttp", "ours"} {
			before := len(rec.Ended())
			res, err := clients[impl].Do(mk())
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			for _, s := range rec.Ended()[before:] {
				v := view(s)
				for _, a := range v.Attrs {
					if strings.Contains(a, "secret") {
						t.Errorf("call %d (%s): the password is in %s", i, impl, a)
					}
				}
				for j, a := range v.Attrs { // the ports differ between the two servers' connections
					if strings.HasPrefix(a, "server.port=") || strings.HasPrefix(a, "url.full=") {
						v.Attrs[j] = strings.SplitN(a, "=", 2)[0]
					}
				}
				got[impl] = append(got[impl], v)
			}
		}
		if len(got["ours"]) != 1 {
			t.Fatalf("call %d: %d spans", i, len(got["ours"]))
		}
		if diff := cmp.Diff(got["otelhttp"], got["ours"]); diff != "" {
			t.Errorf("call %d: client span (-otelhttp +ours):\n%s", i, diff)
		}
		if i == 0 {
			t.Logf("client span: %+v", got["ours"][0])
		}
	}
}
