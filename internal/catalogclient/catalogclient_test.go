package catalogclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/gatewayurl"
)

func newClient(t *testing.T, h http.HandlerFunc) *catalogclient.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := catalogclient.New(catalogclient.Config{Locator: gatewayurl.Locator{Gateway: srv.URL}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGetProduct(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	want := catalogclient.Product{ID: id, SKU: "MUG-001", Name: "Mug", Description: "A mug", Category: "kitchen",
		Price: catalogclient.Money{Amount: 1299, Currency: "USD"}, SoldCount: 3}
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/function/get-product/api/v1/products/"+id.String() {
			http.Error(w, "wrong route "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "sku": "MUG-001", "name": "Mug", "description": "A mug",
			"category": "kitchen", "price": map[string]any{"amount": 1299, "currency": "USD"}, "sold_count": 3,
			"created_at": "2026-01-01T00:00:00Z"})
	})
	got, err := c.GetProduct(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("GetProduct (-want +got):\n%s", diff)
	}
}

func TestNotFoundIsNotRetried(t *testing.T) {
	var calls atomic.Int32
	id := uuid.Must(uuid.NewV7())
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"status":404,"code":"not_found","detail":"no such product","product_id":%q}`, id)
	})
	_, err := c.GetProduct(context.Background(), id)
	if !fault.Is(err, fault.NotFound, "not_found") {
		t.Fatalf("err = %v, want not_found", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("calls = %d, want 1 (no retry on 4xx)", n)
	}
}

func TestFailuresAreUnavailable(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	other := uuid.Must(uuid.NewV7())
	product := func(pid uuid.UUID, amount int, currency string) string {
		return fmt.Sprintf(`{"id":%q,"sku":"S","name":"N","category":"c","price":{"amount":%d,"currency":%q}}`, pid, amount, currency)
	}
	tests := []struct {
		name      string
		status    int
		body      string
		wantCalls int32
		wantKind  fault.Kind
	}{
		{"server error is retried", http.StatusServiceUnavailable, `{}`, 2, fault.Unavailable},
		// fault.Retryable: an unexplained failure may be transient.
		{"internal error is retried", http.StatusInternalServerError, `{}`, 2, fault.Unavailable},
		{"bad request is not retried", http.StatusBadRequest, `{}`, 1, fault.Unavailable},
		// The gateway's 404 for a get-product that is not deployed (no
		// problem body) is an outage, not an unknown product.
		{"missing function is an outage", http.StatusNotFound, `function "get-product" not found`, 2, fault.Unavailable},
		{"garbage", http.StatusOK, `<html>`, 1, fault.Unavailable},
		{"other product", http.StatusOK, product(other, 100, "USD"), 1, fault.Unavailable},
		{"negative price", http.StatusOK, product(id, -1, "USD"), 1, fault.Unavailable},
		{"bad currency", http.StatusOK, product(id, 100, "usd"), 1, fault.Unavailable},
		{"archived", http.StatusOK, `{"id":"` + id.String() + `","price":{"amount":1,"currency":"USD"},"archived_at":"2026-01-01T00:00:00Z"}`, 1, fault.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			})
			_, err := c.GetProduct(context.Background(), id)
			if fault.KindOf(err) != tt.wantKind {
				t.Fatalf("err = %v, want kind %v", err, tt.wantKind)
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Fatalf("calls = %d, want %d", n, tt.wantCalls)
			}
		})
	}
}

// TestA404NotFromGetProductIsAnOutage: only get-product's own 404, the
// not_found problem naming the product asked for (product_id), says the
// product is gone. Every other 404 on the way (a route no function serves, a
// bundle without the member, the gateway or faasd for a function not
// deployed, Kong or the local edge for a route it does not know, another
// product's answer) is a misconfiguration or an outage: the caller must not
// drop or refuse the product for it.
func TestA404NotFromGetProductIsAnOutage(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	unrouted := httptest.NewRecorder()
	fnhttp.Routes(http.NewServeMux()).ServeHTTP(unrouted, httptest.NewRequest(http.MethodGet, "/api/v1/product/"+id.String(), nil))
	if unrouted.Code != http.StatusNotFound {
		t.Fatalf("fnhttp.Routes answered %d for an unknown route", unrouted.Code)
	}
	tests := []struct{ name, contentType, body string }{
		{"fnhttp.Routes' no such route", "application/problem+json", unrouted.Body.String()},
		{"a bundle without the member", "application/problem+json", `{"type":"about:blank","title":"Not Found","status":404,"code":"not_found","detail":"no such route"}`},
		{"the local edge's unknown route", "application/problem+json", `{"type":"about:blank","title":"Not Found","status":404,"code":"not_found","detail":"no route matches the request"}`},
		{"not_found without the product", "application/problem+json", `{"status":404,"code":"not_found","detail":"no such product"}`},
		{"another product's not_found", "application/problem+json", fmt.Sprintf(`{"status":404,"code":"not_found","product_id":%q}`, uuid.Must(uuid.NewV7()))},
		{"the gateway's function not found", "text/plain", "error finding function get-product.openfaas-fn: not found"},
		{"faaslocal's function not found", "text/plain; charset=utf-8", `function "get-product" not found`},
		{"a mux's 404 page", "text/plain; charset=utf-8", "404 page not found"},
		{"Kong's no route", "application/json; charset=utf-8", `{"message":"no Route matched with those values"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprint(w, tt.body)
			})
			_, err := c.GetProduct(context.Background(), id)
			if !fault.Is(err, fault.Unavailable, fault.CodeUnavailable) {
				t.Fatalf("err = %v, want unavailable", err)
			}
			if n := calls.Load(); n != 2 {
				t.Fatalf("calls = %d, want 2 (an outage is tried again)", n)
			}
		})
	}
}

func TestTransientFailureThenSuccess(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	var calls atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, `{"id":%q,"price":{"amount":5,"currency":"EUR"}}`, id)
	})
	p, err := c.GetProduct(context.Background(), id)
	if err != nil || p.Price.Amount != 5 {
		t.Fatalf("GetProduct = %+v, %v", p, err)
	}
}

func TestSlowCatalogTimesOut(t *testing.T) {
	release := make(chan struct{})
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	start := time.Now()
	_, err := c.GetProduct(context.Background(), uuid.Must(uuid.NewV7()))
	if !fault.Is(err, fault.Unavailable, "unavailable") {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v; the per-attempt timeout was not applied", d)
	}
}

func TestTraceparentIsForwarded(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true}))
	id := uuid.Must(uuid.NewV7())
	got := make(chan string, 1)
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
		fmt.Fprintf(w, `{"id":%q,"price":{"amount":5,"currency":"EUR"}}`, id)
	})
	if _, err := c.GetProduct(ctx, id); err != nil {
		t.Fatal(err)
	}
	tp := <-got
	if len(tp) < 36 || tp[3:35] != traceID.String() {
		t.Fatalf("traceparent = %q, want trace id %s", tp, traceID)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, u := range []string{"", "gateway:8080", "ftp://x"} {
		if _, err := catalogclient.New(catalogclient.Config{Locator: gatewayurl.Locator{Gateway: u}}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
