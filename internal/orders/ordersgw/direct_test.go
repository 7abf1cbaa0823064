package ordersgw_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
)

// TestSagaCallsGoDirectAndSurviveAClosedConnection: with reserve-stock and
// release-stock at their own address (FUNCTION_URLS) the saga's calls go
// there, not to the gateway, and a call that meets a kept-alive connection
// the callee's replica closed is sent again on a new connection (the calls
// are marked replayable: they are idempotent by order id) instead of failing.
func TestSagaCallsGoDirectAndSurviveAClosedConnection(t *testing.T) {
	gw := fntest.NewUnusedGateway(t)
	var mu sync.Mutex
	var paths []string
	order := uuid.New()
	direct := fntest.NewClosingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		_, _ = io.WriteString(w, `{"order_id":"`+order.String()+`","status":"released"}`)
	}))
	d, err := gatewayurl.ParseDirect("reserve-stock="+direct.URL+",release-stock="+direct.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	g, err := ordersgw.NewAt(gatewayurl.Locator{Gateway: gw.URL, Direct: d}, "internal", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := g.Reserve(ctx, order, []orders.Line{{ProductID: uuid.New(), Quantity: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := g.Release(ctx, order); err != nil {
		t.Fatalf("release on a connection the callee closed: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 2 || paths[0] != "/" || paths[1] != "/" || direct.Conns.Load() != 2 {
		t.Errorf("direct server answered %q on %d connections, want two calls of / on two", paths, direct.Conns.Load())
	}
}
