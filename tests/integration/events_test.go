package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/connector"
)

// eventHandlers are the functions subscribed to order events in this test.
var eventHandlers = []string{"update-product-stats", "notify-user", "index-product"}

// TestOrderEventsReachTheHandlers runs the whole event path as processes: a
// confirmed order's order.placed.v1 goes from the orders outbox through the
// outbox relay, RabbitMQ and the RabbitMQ connector to update-product-stats
// and notify-user. The product's sold_count rises and the customer has a
// notification; the handler's log carries the checkout's trace id — the one
// the edge started and the order's timeline names, not the one the client
// sent; a cancellation lowers sold_count again.
//
// eventWait is a liveness bound, not a latency budget: how fast the events
// arrive is measured by tests/bench (eventLag, the event lag per handler in
// docs/benchmarks.md), not here, where a loaded machine would make a budget
// flaky.
func TestOrderEventsReachTheHandlers(t *testing.T) {
	_, env := eventEnv(t)
	s := startShop(t, []string{"register-user", "login-user", "get-product", "set-stock", "reserve-stock", "commit-stock",
		"release-stock", "charge-payment", "refund-payment", "create-order", "cancel-order",
		"update-product-stats", "notify-user", "index-product", "list-notifications", "get-order-timeline"},
		[]string{"outbox-relay", "rabbitmq"}, env)
	p := s.product(t, "EV-MUG-1", 1250, 5)
	suffix := s.Suffix

	email := "events-" + suffix + "@example.com"
	if code := call(t, http.MethodPost, s.EdgeURL+"/api/v1/users", "",
		map[string]string{"email": email, "password": "long enough password", "name": "Eve"}, nil); code != http.StatusCreated {
		t.Fatalf("register: %d", code)
	}
	var login struct {
		AccessToken string `json:"access_token"`
	}
	if code := call(t, http.MethodPost, s.EdgeURL+"/api/v1/auth/login", "",
		map[string]string{"email": email, "password": "long enough password"}, &login); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}

	// The client sends a trace context; the edge starts the shop's trace
	// instead, and every hop must keep that one's trace id.
	tb := make([]byte, 16)
	_, _ = rand.Read(tb)
	clientTrace := hex.EncodeToString(tb)
	body := `{"items":[{"product_id":"` + p.ID.String() + `","quantity":2}],` +
		`"shipping_address":{"name":"Eve","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},` +
		`"payment":{"token":"tok_visa"}}`
	req, _ := http.NewRequest(http.MethodPost, s.EdgeURL+"/api/v1/orders", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+login.AccessToken)
	req.Header.Set("traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create order: %d %s", res.StatusCode, raw)
	}
	orderID := strings.SplitN(strings.TrimPrefix(string(raw), `{"id":"`), `"`, 2)[0]
	traceID := timeline(t, s.EdgeURL, orderID, login.AccessToken)[0].TraceID
	if traceID == "" || traceID == clientTrace {
		t.Fatalf("the order's timeline names trace %q; want the edge's new trace, not the client's %s", traceID, clientTrace)
	}

	waitFor(t, eventWait, "sold_count 2 after order.placed.v1", func() bool { return soldCount(t, s.EdgeURL, p.ID) == 2 })
	waitFor(t, eventWait, "the order notification", func() bool {
		var list struct {
			Items []struct {
				Type    string `json:"type"`
				OrderID string `json:"order_id"`
			} `json:"items"`
		}
		call(t, http.MethodGet, s.EdgeURL+"/api/v1/users/me/notifications", login.AccessToken, nil, &list)
		for _, n := range list.Items {
			if n.OrderID == orderID {
				return true
			}
		}
		return false
	})
	badCursor(t, s.EdgeURL+"/api/v1/users/me/notifications", login.AccessToken)
	badCursor(t, s.EdgeURL+"/api/v1/orders/"+orderID+"/timeline", login.AccessToken)
	waitFor(t, eventWait, "the trace id in update-product-stats' log", func() bool {
		return logsContain(t, s.Runtime, "update-product-stats", traceID)
	})

	if code := call(t, http.MethodPost, s.EdgeURL+"/api/v1/orders/"+orderID+"/cancel", login.AccessToken, nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	waitFor(t, eventWait, "sold_count 0 after order.cancelled.v1", func() bool { return soldCount(t, s.EdgeURL, p.ID) == 0 })
}

// eventWait bounds every wait of TestOrderEventsReachTheHandlers for an
// event's effect: generous, so that only a lost or stuck event fails it.
const eventWait = 60 * time.Second

func soldCount(t *testing.T, edge string, id uuid.UUID) int {
	t.Helper()
	var p struct {
		SoldCount int `json:"sold_count"`
	}
	if code := call(t, http.MethodGet, edge+"/api/v1/products/"+id.String(), "", nil, &p); code != http.StatusOK {
		t.Fatalf("get product: %d", code)
	}
	return p.SoldCount
}

// logsContain reads the function's logs through the gateway API (/system/logs).
func logsContain(t *testing.T, rt *runtimetest.Runtime, fn, needle string) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rt.GatewayURL+"/system/logs?name="+fn+"&follow=false&tail=1000", nil)
	if err != nil {
		t.Fatal(err)
	}
	rt.Authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if ok() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cleanupBroker deletes the test's exchanges and queues when it ends.
func cleanupBroker(t *testing.T, names broker.Names) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := broker.Dial(ctx, broker.DefaultURL, "shop-test")
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		delays := connector.Config{RetryDelay: time.Second, MaxAttempts: 3}.Delays()
		for _, fn := range eventHandlers {
			_, _ = ch.QueueDelete(names.Queue(fn), false, false, false)
			_, _ = ch.QueueDelete(names.DLQ(fn), false, false, false)
			for _, d := range delays {
				_, _ = ch.QueueDelete(names.Retry(fn, d), false, false, false)
			}
		}
		_, _ = ch.QueueDelete(names.Unrouted(), false, false, false)
		_ = ch.ExchangeDelete(names.Exchange(), false, false)
		_ = ch.ExchangeDelete(names.Unrouted(), false, false)
	})
}
