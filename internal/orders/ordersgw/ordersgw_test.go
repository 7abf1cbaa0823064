package ordersgw_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
	"github.com/shopfaas/shop/internal/orders/saga"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Finding 5 of issue 12: the saga took any 2xx from charge-payment as a
// capture. Only the capture of this order for this amount is one now;
// anything else is a retryable fault, so the order is neither confirmed nor
// compensated.
func TestChargeAcceptsOnlyTheCaptureOfThisOrder(t *testing.T) {
	order := uuid.New()
	amount := orders.Money{Amount: 1999, Currency: "EUR"}
	capture := `{"id":"` + uuid.NewString() + `","order_id":"` + order.String() +
		`","status":"captured","amount":{"amount":1999,"currency":"EUR"},"provider_ref":"sim_1"}`
	for _, c := range []answerCase{
		{"the capture", 200, capture, 0, true},
		{"empty success", 200, ``, fault.Internal, false},
		{"an empty object", 200, `{}`, fault.Internal, false},
		{"not JSON", 200, `ok`, fault.Internal, false},
		{"declined with 200", 200, `{"order_id":"` + order.String() + `","status":"declined","amount":{"amount":1999,"currency":"EUR"}}`, fault.Internal, false},
		{"another order", 200, `{"order_id":"` + uuid.NewString() + `","status":"captured","amount":{"amount":1999,"currency":"EUR"}}`, fault.Internal, false},
		{"another amount", 200, `{"order_id":"` + order.String() + `","status":"captured","amount":{"amount":1,"currency":"EUR"}}`, fault.Internal, false},
		{"another currency", 200, `{"order_id":"` + order.String() + `","status":"captured","amount":{"amount":1999,"currency":"USD"}}`, fault.Internal, false},
		{"declined", 402, `{"type":"about:blank","title":"Payment Required","status":402,"code":"payment_declined","detail":"declined"}`, fault.PaymentRequired, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			gw := answering(t, "charge-payment", c.status, c.body)
			err := gw.Charge(context.Background(), saga.Charge{OrderID: order, UserID: uuid.New(), Amount: amount, Token: "tok_visa"})
			c.check(t, "Charge", err, c.want == fault.Internal, "so the order stays pending")
		})
	}
}

// A refund-payment that answers 200 with the payment still captured (its
// attempt was taken over and found the row unchanged) refunded nothing we
// recorded: only refunded, declined or none settles the compensation;
// anything else is a retryable fault, so the saga asks again.
func TestRefundAcceptsOnlyASettledPaymentOfThisOrder(t *testing.T) {
	order := uuid.New()
	view := func(id uuid.UUID, status string) string {
		return `{"id":"` + uuid.NewString() + `","order_id":"` + id.String() + `","status":"` + status +
			`","amount":{"amount":1999,"currency":"EUR"},"provider_ref":"sim_1"}`
	}
	for _, c := range []answerCase{
		{"refunded", 200, view(order, "refunded"), 0, true},
		{"declined", 200, view(order, "declined"), 0, true},
		{"never charged", 200, `{"order_id":"` + order.String() + `","status":"none"}`, 0, true},
		{"still captured", 200, view(order, "captured"), fault.Internal, false},
		{"pending", 200, view(order, "pending"), fault.Internal, false},
		{"another order", 200, view(uuid.New(), "refunded"), fault.Internal, false},
		{"empty success", 200, ``, fault.Internal, false},
		{"not JSON", 200, `ok`, fault.Internal, false},
		{"unavailable", 503, `{"type":"about:blank","title":"Service Unavailable","status":503,"code":"processor_unavailable","detail":"retry"}`, fault.Unavailable, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			gw := answering(t, "refund-payment", c.status, c.body)
			err := gw.Refund(context.Background(), order)
			c.check(t, "Refund", err, true, "so the compensation is asked again")
		})
	}
}

// TestEveryCallCarriesTheCallersTrace: each saga call goes out with one
// traceparent, of the caller's trace (sent by the client's transport, not
// injected a second time by the gateway client).
func TestEveryCallCarriesTheCallersTrace(t *testing.T) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	if _, err := telemetry.Setup(t.Context(), "create-order", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	var got [][]string
	order := uuid.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Values("traceparent"))
		if strings.HasSuffix(r.URL.Path, "/release-stock") {
			_, _ = w.Write([]byte(`{"order_id":"` + order.String() + `","status":"released"}`))
		}
	}))
	defer srv.Close()
	gw, err := ordersgw.New(srv.URL, "internal", nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := otel.Tracer("test").Start(context.Background(), "POST /api/v1/orders")
	defer span.End()
	for _, call := range []func() error{
		func() error { return gw.Reserve(ctx, order, []orders.Line{{ProductID: uuid.New(), Quantity: 1}}) },
		func() error { return gw.Commit(ctx, order) },
		func() error { return gw.Release(ctx, order) },
	} {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	trace := span.SpanContext().TraceID().String()
	for i, h := range got {
		if len(h) != 1 || !strings.HasPrefix(h[0], "00-"+trace+"-") {
			t.Errorf("call %d: traceparent %q, want one of trace %s", i, h, trace)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d calls arrived, want 3", len(got))
	}
}

// HOLD_TTL reaches reserve-stock as ttl_seconds; unset, the field is left
// out and reserve-stock's default applies.
func TestReserveAsksForTheHoldTTL(t *testing.T) {
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
	}))
	defer srv.Close()
	gw, err := ordersgw.New(srv.URL, "internal", nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lines := []orders.Line{{ProductID: uuid.New(), Quantity: 1}}
	if err := gw.Reserve(t.Context(), uuid.New(), lines); err != nil {
		t.Fatal(err)
	}
	gw.SetHoldTTL(45 * time.Second)
	if err := gw.Reserve(t.Context(), uuid.New(), lines); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || strings.Contains(bodies[0], "ttl_seconds") || !strings.Contains(bodies[1], `"ttl_seconds":45`) {
		t.Errorf("reserve-stock bodies %q, want no ttl_seconds, then 45", bodies)
	}
}

// Every call the saga makes passes the called function's own reading of its
// body (fnhttp.Decode, which refuses a body without a JSON Content-Type with
// 400 unsupported_media_type): none is refused for how it is sent.
func TestEveryCallPassesTheFunctionsBodyCheck(t *testing.T) {
	refused := map[string]error{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body json.RawMessage
		refused[path.Base(r.URL.Path)] = fnhttp.Decode(r, &body, 0)
	}))
	defer srv.Close()
	gw, err := ordersgw.New(srv.URL, "internal", nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, order := t.Context(), uuid.New()
	_ = gw.Reserve(ctx, order, []orders.Line{{ProductID: uuid.New(), Quantity: 1}})
	_ = gw.Commit(ctx, order)
	_ = gw.Release(ctx, order)
	_ = gw.Charge(ctx, saga.Charge{OrderID: order, UserID: uuid.New(), Amount: orders.Money{Amount: 1, Currency: "USD"}, Token: "tok_visa"})
	_ = gw.Refund(ctx, order)
	for _, fn := range []string{"reserve-stock", "commit-stock", "release-stock", "charge-payment", "refund-payment"} {
		if err, called := refused[fn]; !called {
			t.Errorf("%s was not called", fn)
		} else if err != nil {
			t.Errorf("%s would refuse the call: %v", fn, err)
		}
	}
}

// answerCase is a saga call's answer (status and body) and what the call
// must make of it: success when ok, else a fault of kind want.
type answerCase struct {
	name   string
	status int
	body   string
	want   fault.Kind // when not ok
	ok     bool
}

// check fails the test unless err, call's result for the answer, is what c
// wants; a fault must also be retryable when mustRetry, for the reason why.
func (c answerCase) check(t *testing.T, call string, err error, mustRetry bool, why string) {
	t.Helper()
	switch {
	case c.ok && err != nil:
		t.Fatalf("%s = %v, want success", call, err)
	case c.ok:
	case err == nil || fault.KindOf(err) != c.want:
		t.Fatalf("%s = %v (kind %v), want kind %v", call, err, fault.KindOf(err), c.want)
	case mustRetry && !fault.Retryable(err):
		t.Fatalf("%s = %v must be retryable, %s", call, err, why)
	}
}

// answering is a gateway to a fake function fn that answers every call with
// status and body (a problem's content type for a status other than 200),
// and 418 to a call of another function or without the internal credential.
func answering(t *testing.T, fn string, status int, body string) *ordersgw.Gateway {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/function/"+fn || r.Header.Get("X-Internal-Token") != "internal" {
			http.Error(w, "unexpected call", http.StatusTeapot)
			return
		}
		if status != 200 {
			w.Header().Set("Content-Type", "application/problem+json")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	gw, err := ordersgw.New(srv.URL, "internal", srv.Client(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// Only the function's own 404 for the order (a not_found problem whose
// order_id names it: commit-stock's "no reservation for this order") is
// fault.NotFound, which the saga reads as a final refusal (a commit's cancels
// the paid order and refunds it). Any other 404 (a route no function serves,
// a bundle without the member, the local edge, the gateway's plain text for
// a function not deployed, another order's answer) is a misconfiguration or
// an outage: fault.Unavailable, retryable, so the order stays pending.
func TestOnlyTheFunctionsOwn404ForTheOrderIsNotFound(t *testing.T) {
	order := uuid.New()
	unrouted := httptest.NewRecorder()
	fnhttp.Routes(http.NewServeMux()).ServeHTTP(unrouted, httptest.NewRequest(http.MethodPost, "/", nil))
	if unrouted.Code != http.StatusNotFound {
		t.Fatalf("fnhttp.Routes' no such route: %d, want the 404 this test feeds the client", unrouted.Code)
	}
	for _, c := range []struct {
		name, body string
		want       fault.Kind
	}{
		{"commit-stock's own", `{"type":"about:blank","title":"Not Found","status":404,"code":"not_found","detail":"no reservation for this order","order_id":"` + order.String() + `"}`, fault.NotFound},
		{"fnhttp.Routes' no such route", unrouted.Body.String(), fault.Unavailable},
		{"the local edge's unknown route", `{"type":"about:blank","title":"Not Found","status":404,"code":"not_found","detail":"no route matches the request"}`, fault.Unavailable},
		{"not_found without the order", `{"type":"about:blank","title":"Not Found","status":404,"code":"not_found","detail":"no reservation for this order"}`, fault.Unavailable},
		{"another order's", `{"status":404,"code":"not_found","order_id":"` + uuid.NewString() + `"}`, fault.Unavailable},
		{"the gateway's plain text", `error finding function commit-stock.openfaas-fn: not found`, fault.Unavailable},
		{"Kong's no route", `{"message":"no Route matched with those values"}`, fault.Unavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := answering(t, "commit-stock", http.StatusNotFound, c.body).Commit(context.Background(), order)
			if fault.KindOf(err) != c.want {
				t.Fatalf("Commit = %v (kind %v), want kind %v", err, fault.KindOf(err), c.want)
			}
			if c.want == fault.Unavailable && !fault.Retryable(err) {
				t.Fatalf("Commit = %v must be retryable, so the order stays pending", err)
			}
		})
	}
}

// release-stock answers the order's reservation as the release left it:
// released (a hold given back), restocked (a sale given back) or none
// (nothing was reserved). Any other 200 — a hold still held or committed,
// another order's answer, a body that is no release's — gave nothing back
// that we know of: a retryable fault, so the saga does not mark the
// compensation done and asks again. Until 2026-12-08 the answer was
// discarded, and any 2xx settled the release.
func TestReleaseAcceptsOnlyAReleaseOfThisOrder(t *testing.T) {
	order := uuid.New()
	answer := func(id uuid.UUID, status string) string {
		return `{"order_id":"` + id.String() + `","status":"` + status + `"}`
	}
	for _, c := range []answerCase{
		{"released", 200, answer(order, "released"), 0, true},
		{"restocked", 200, answer(order, "restocked"), 0, true},
		{"nothing reserved", 200, answer(order, "none"), 0, true},
		{"still held", 200, answer(order, "held"), fault.Internal, false},
		{"still committed", 200, answer(order, "committed"), fault.Internal, false},
		{"another order", 200, answer(uuid.New(), "released"), fault.Internal, false},
		{"empty success", 200, ``, fault.Internal, false},
		{"not JSON", 200, `ok`, fault.Internal, false},
		{"unavailable", 503, `{"type":"about:blank","title":"Service Unavailable","status":503,"code":"unavailable","detail":"retry"}`, fault.Unavailable, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := answering(t, "release-stock", c.status, c.body).Release(context.Background(), order)
			c.check(t, "Release", err, true, "so the compensation is asked again")
		})
	}
}
