package orderstatus_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/orderstatus"
)

// The client posts the ids (as application/json) with its credential to
// order-statuses through the gateway and returns the statuses; an error
// answered, no answer, or an answer about orders it did not ask about is an
// error (the sweep then changes nothing).
func TestStatuses(t *testing.T) {
	id, other := uuid.New(), uuid.New()
	var answer string
	var status int
	var got struct{ path, token, body, contentType string }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.path, got.token, got.body = r.URL.Path, r.Header.Get(auth.InternalHeader), string(b)
		got.contentType = r.Header.Get("Content-Type")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	c, err := orderstatus.New(gatewayurl.Locator{Gateway: srv.URL}, "expire-reservations.secret", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	status, answer = 200, `{"statuses":{"`+id.String()+`":"confirmed"}}`
	m, err := c.Statuses(ctx, []uuid.UUID{id, other})
	if err != nil || len(m) != 1 || m[id] != inventory.OrderConfirmed {
		t.Fatalf("statuses: %v %v", m, err)
	}
	// order-statuses reads its body with fnhttp.Decode, which refuses one
	// without a JSON Content-Type.
	if got.path != "/function/order-statuses" || got.token != "expire-reservations.secret" || got.contentType != "application/json" ||
		!strings.Contains(got.body, id.String()) || !strings.Contains(got.body, other.String()) {
		t.Errorf("request %+v", got)
	}

	status, answer = 503, `{"type":"about:blank","status":503,"code":"unavailable","title":"Service Unavailable"}`
	if _, err := c.Statuses(ctx, []uuid.UUID{id}); !fault.Retryable(err) {
		t.Errorf("503: %v, want a retryable error", err)
	}
	// A refusal of the client's own credential is order-statuses being
	// unavailable to it, never the 401 or 403 its caller would pass on.
	for _, refused := range []struct {
		status int
		code   string
	}{{401, "unauthenticated"}, {403, "forbidden"}, {400, "invalid"}} {
		status, answer = refused.status, `{"type":"about:blank","status":`+strconv.Itoa(refused.status)+`,"code":"`+refused.code+`","title":"x"}`
		if _, err := c.Statuses(ctx, []uuid.UUID{id}); fault.KindOf(err) != fault.Unavailable || fault.CodeOf(err) != fault.CodeUnavailable {
			t.Errorf("%d: %v, want unavailable", refused.status, err)
		}
	}
	// A 200 that is not the statuses of the orders asked about is
	// order-statuses failing (a dependency's fault, retried by the next
	// run): unavailable, so the sweep answers 503, never 500.
	for _, malformed := range []struct{ name, answer string }{
		{"an order not asked about", `{"statuses":{"` + other.String() + `":"confirmed"}}`},
		{"no statuses", `{}`},
		{"not JSON", `<html>gateway</html>`},
		{"statuses not an object", `{"statuses":[]}`},
	} {
		status, answer = 200, malformed.answer
		if _, err := c.Statuses(ctx, []uuid.UUID{id}); fault.KindOf(err) != fault.Unavailable || fault.CodeOf(err) != fault.CodeUnavailable {
			t.Errorf("200 with %s: %v, want unavailable", malformed.name, err)
		}
	}
	if _, err := c.Statuses(ctx, make([]uuid.UUID, orderstatus.MaxIDs+1)); err == nil {
		t.Error("more than MaxIDs ids were sent")
	}
	srv.Close()
	if _, err := c.Statuses(ctx, []uuid.UUID{id}); fault.KindOf(err) != fault.Unavailable {
		t.Errorf("no answer: %v, want unavailable", err)
	}
}

// With order-statuses at its own address the sweep calls it there, and a
// call that meets a kept-alive connection the callee's replica closed is
// sent again on a new connection (order-statuses only reads: the call is
// marked replayable) instead of failing.
func TestStatusesDirectSurviveAClosedConnection(t *testing.T) {
	id := uuid.New()
	gw := fntest.NewUnusedGateway(t)
	direct := fntest.NewClosingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/" {
			http.Error(w, "wrong route "+r.URL.Path, http.StatusTeapot)
			return
		}
		_, _ = io.WriteString(w, `{"statuses":{"`+id.String()+`":"confirmed"}}`)
	}))
	d, err := gatewayurl.ParseDirect("order-statuses="+direct.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := orderstatus.New(gatewayurl.Locator{Gateway: gw.URL, Direct: d}, "expire-reservations.secret", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if m, err := c.Statuses(context.Background(), []uuid.UUID{id}); err != nil || m[id] != inventory.OrderConfirmed {
			t.Fatalf("call %d: %v %v", i+1, m, err)
		}
	}
	if n := direct.Conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the second call sent again on a new one)", n)
	}
}
