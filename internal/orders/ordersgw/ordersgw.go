// Package ordersgw is the orders service's client of the internal checkout
// functions (reserve-stock, commit-stock, release-stock, charge-payment,
// refund-payment), which it locates on the OpenFaaS gateway like any other
// function and calls there or directly (internal/gatewayurl): it implements
// the saga's Stock and Payments.
package ordersgw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/saga"
)

// Gateway calls the internal checkout functions (reserve-stock, commit-stock,
// release-stock, charge-payment, refund-payment) at
// $GATEWAY_URL/function/<name> (or, in the bundled faasd-CE stack, at the
// member path internal/gatewayurl locates; or directly where the locator's
// Direct allows), with the internal credential in
// X-Internal-Token and the caller's trace context in traceparent. It
// implements Stock and Payments and is safe for concurrent use.
//
// A failed answer is the error the function answered, mapped back by
// fnhttp.ErrorFrom (409 out_of_stock is fault.Conflict "out_of_stock", 402
// fault.PaymentRequired, …), so the saga decides on kinds and codes and on
// fault.Retryable, as if it had called the function in process. A 404 is
// fault.NotFound only when it is the function's own answer about the order
// (its problem's order_id names it); any other 404 (a route no function
// serves, a function not deployed, a wrong gateway URL) is
// fault.Unavailable, so a misconfiguration leaves the order pending rather
// than cancelling it. A call that
// gets no answer (connection refused, timeout) is fault.Unavailable; every
// call is idempotent by order id, so it may be retried, and is marked so
// (gatewayurl.MarkReplayable): net/http itself sends it again when it meets a
// kept-alive connection the callee's replica closed.
type Gateway struct {
	loc gatewayurl.Locator
	hc  *http.Client
	// callTimeout bounds one call.
	callTimeout time.Duration
	// urls holds the URL of every function the saga calls, located once
	// (loc.URL builds a string per call).
	urls map[string]string
	// header holds the headers every call sends; a request gets a copy
	// (two allocations, where setting them one by one took three more).
	header http.Header
	// holdTTL is the hold time reserve-stock is asked for; zero leaves it
	// to reserve-stock (15 min).
	holdTTL time.Duration
}

// SetHoldTTL sets the hold time every Reserve asks for (HOLD_TTL); zero,
// the default, leaves it to reserve-stock. Call it before the first Reserve.
// A hold outlives its TTL while its order is pending or confirmed (the
// sweep asks order-statuses); the TTL only bounds how long the hold of an
// order never written keeps stock from other customers.
func (g *Gateway) SetHoldTTL(d time.Duration) { g.holdTTL = d }

// functions are the functions a Gateway calls.
var functions = [...]string{"reserve-stock", "commit-stock", "release-stock", "charge-payment", "refund-payment"}

// New returns a client of the gateway at baseURL using the internal
// credential token. hc may be nil (gatewayurl.Locator.NewClient); its transport is
// what sends the caller's trace context (telemetry.Client), once per call.
func New(baseURL, token string, hc *http.Client, callTimeout time.Duration) (*Gateway, error) {
	return NewAt(gatewayurl.Locator{Gateway: baseURL}, token, hc, callTimeout)
}

// NewAt is New for functions located by loc, so the same code calls
// unbundled functions (stack.yml) or bundle members (stack.ce.yml).
func NewAt(loc gatewayurl.Locator, token string, hc *http.Client, callTimeout time.Duration) (*Gateway, error) {
	baseURL := loc.Gateway
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway URL %q must be an absolute http(s) URL", baseURL)
	}
	if token == "" {
		return nil, fmt.Errorf("the internal credential is empty")
	}
	if hc == nil {
		hc = loc.NewClient()
	}
	if callTimeout <= 0 {
		callTimeout = 10 * time.Second
	}
	urls := make(map[string]string, len(functions))
	for _, fn := range functions {
		urls[fn] = loc.URL(fn)
	}
	header := http.Header{
		"Content-Type":      {"application/json"},
		"Accept":            {"application/json"},
		auth.InternalHeader: {token},
	}
	// reserve-, commit- and release-stock, charge- and refund-payment each do
	// an order's step once, whatever number of times they are asked
	// (docs/checkout.md), so a call may be sent again.
	gatewayurl.MarkReplayable(header)
	return &Gateway{loc: loc, hc: hc, callTimeout: callTimeout, urls: urls, header: header}, nil
}

type line struct {
	ProductID uuid.UUID `json:"product_id"`
	Quantity  int       `json:"quantity"`
}

// Reserve calls reserve-stock for all lines of an order.
func (g *Gateway) Reserve(ctx context.Context, orderID uuid.UUID, lines []orders.Line) error {
	in := struct {
		OrderID    uuid.UUID `json:"order_id"`
		Lines      []line    `json:"lines"`
		TTLSeconds int       `json:"ttl_seconds,omitempty"`
	}{OrderID: orderID, Lines: make([]line, 0, len(lines)), TTLSeconds: int(g.holdTTL / time.Second)}
	for _, l := range lines {
		in.Lines = append(in.Lines, line{l.ProductID, l.Quantity})
	}
	return g.call(ctx, "reserve-stock", orderID, in)
}

// Commit calls commit-stock.
func (g *Gateway) Commit(ctx context.Context, orderID uuid.UUID) error {
	return g.call(ctx, "commit-stock", orderID, orderRef{orderID})
}

// Release calls release-stock and accepts only an answer that gives this
// order's stock back: released (a hold), restocked (a sale) or none (nothing
// was reserved; a late reservation try is refused). A 2xx with anything else
// (a hold still held or committed, another order, a defect) is
// fault.Internal, so the saga does not mark the compensation done while
// stock may still be held for the order; it retries.
func (g *Gateway) Release(ctx context.Context, orderID uuid.UUID) error {
	return g.settle(ctx, "release-stock", orderID, released, "giving back its stock")
}

// settle calls fn for orderID and accepts only a 2xx naming this order with
// a status done says leaves nothing held; any other 2xx is fault.Internal,
// saying what fn answered without doing.
func (g *Gateway) settle(ctx context.Context, fn string, orderID uuid.UUID, done func(status string) bool, doing string) error {
	raw, err := g.do(ctx, fn, orderID, orderRef{orderID})
	if err != nil {
		return err
	}
	var p struct {
		OrderID uuid.UUID `json:"order_id"`
		Status  string    `json:"status"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || p.OrderID != orderID || !done(p.Status) {
		return fault.Internalf("%s answered success for order %s without %s: %.200q", fn, orderID, doing, raw)
	}
	return nil
}

// released reports whether a release-stock status leaves no stock held for
// the order (inventory.StatusReleased, StatusRestocked, StatusNone).
func released(status string) bool {
	return status == "released" || status == "restocked" || status == "none"
}

// Charge calls charge-payment and accepts only an answer that is the capture
// of this order for this amount: a 2xx that is not (a wrong function behind
// the name, a defect) is fault.Internal, so the saga neither confirms the
// order nor compensates a charge that may exist; it retries, and the order
// stays pending for recovery and the stuck-order alert.
func (g *Gateway) Charge(ctx context.Context, c saga.Charge) error {
	raw, err := g.do(ctx, "charge-payment", c.OrderID, struct {
		OrderID uuid.UUID    `json:"order_id"`
		UserID  uuid.UUID    `json:"user_id"`
		Amount  orders.Money `json:"amount"`
		Token   string       `json:"token"`
	}{c.OrderID, c.UserID, c.Amount, c.Token})
	if err != nil {
		return err
	}
	var p struct {
		OrderID uuid.UUID    `json:"order_id"`
		Status  string       `json:"status"`
		Amount  orders.Money `json:"amount"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || p.OrderID != c.OrderID || p.Status != "captured" || p.Amount != c.Amount {
		return fault.Internalf("charge-payment answered success without the capture of order %s for %d %s: %.200q",
			c.OrderID, c.Amount.Amount, c.Amount.Currency, raw)
	}
	return nil
}

// Refund calls refund-payment and accepts only an answer that settles this
// order's payment: refunded, declined (nothing was captured) or none (never
// charged, and now never will be). A 2xx with anything else (a payment still
// captured, another order, a defect) is fault.Internal, so the saga does not
// mark the compensation done while money may still be held; it retries.
func (g *Gateway) Refund(ctx context.Context, orderID uuid.UUID) error {
	return g.settle(ctx, "refund-payment", orderID, settled, "settling its payment")
}

// settled reports whether a refund-payment status leaves no money held.
func settled(status string) bool {
	return status == "refunded" || status == "declined" || status == "none"
}

type orderRef struct {
	OrderID uuid.UUID `json:"order_id"`
}

// call POSTs in, about order, to fn and discards the body of a 2xx answer.
func (g *Gateway) call(ctx context.Context, fn string, order uuid.UUID, in any) error {
	_, err := g.send(ctx, fn, order, in, false)
	return err
}

// do POSTs in, about order, to fn and returns the body of a 2xx answer (at
// most 64 KiB).
func (g *Gateway) do(ctx context.Context, fn string, order uuid.UUID, in any) ([]byte, error) {
	return g.send(ctx, fn, order, in, true)
}

// send POSTs in, about order, to fn. A 2xx answer's body (at most 64 KiB) is
// returned when keep is set and read to its end otherwise, so the connection
// is reused either way; any other answer is the error it carries, except a
// 404 that is not the function's own for order (fnhttp.NotFoundNames): that is
// fault.Unavailable.
func (g *Gateway) send(ctx context.Context, fn string, order uuid.UUID, in any, keep bool) ([]byte, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fault.Internalf("encode %s request: %w", fn, err)
	}
	ctx, cancel := context.WithTimeout(ctx, g.callTimeout)
	defer cancel()
	u, ok := g.urls[fn]
	if !ok {
		u = g.loc.URL(fn)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fault.Internalf("%s request: %w", fn, err)
	}
	req.Header = g.header.Clone()
	resp, err := g.hc.Do(req)
	if err != nil {
		return nil, fault.Wrap(fmt.Errorf("%s: %w", fn, err), fault.Unavailable, fault.CodeUnavailable, fn+" is unavailable")
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 && !keep {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return raw, nil
	}
	answered := fnhttp.ErrorFrom(resp.StatusCode, raw)
	if answered.Kind == fault.NotFound && !fnhttp.NotFoundNames(raw, "order_id", order) {
		// A route no function serves, a bundle without the member, the
		// edge: a misconfiguration, not the function saying the order has
		// nothing (which the saga takes as final). An outage: retried, the
		// order stays pending.
		return nil, fault.Wrap(fmt.Errorf("%s: a 404 that is not its answer for order %s: %w", fn, order, answered),
			fault.Unavailable, fault.CodeUnavailable, fn+" is unavailable")
	}
	return nil, fmt.Errorf("%s: %w", fn, answered)
}
