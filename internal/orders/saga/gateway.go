package saga

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
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/orders"
)

// Gateway calls the internal checkout functions (reserve-stock, commit-stock,
// release-stock, charge-payment, refund-payment) through the OpenFaaS gateway
// at $GATEWAY_URL/function/<name> (or, in the bundled faasd-CE stack, at the
// member path internal/gatewayurl locates), with the internal credential in
// X-Internal-Token and the caller's trace context in traceparent. It
// implements Stock and Payments and is safe for concurrent use.
//
// Answers map to faults as the contract says: 409 out_of_stock and
// reservation_released are fault.Conflict with those codes, 402 is
// fault.PaymentRequired "payment_declined", 404 is fault.NotFound, 422 is
// fault.Invalid; a connection failure, a timeout or a 5xx is
// fault.Unavailable (the step may be retried: every call is idempotent by
// order id); any other answer (401 included: a misconfigured credential) is
// fault.Internal.
type Gateway struct {
	loc   gatewayurl.Locator
	token string
	hc    *http.Client
	// CallTimeout bounds one call.
	callTimeout time.Duration
}

// NewGateway returns a client of the gateway at baseURL using the internal
// credential token. hc may be nil (an OpenTelemetry-instrumented client).
func NewGateway(baseURL, token string, hc *http.Client, callTimeout time.Duration) (*Gateway, error) {
	return NewGatewayAt(gatewayurl.Locator{Gateway: baseURL}, token, hc, callTimeout)
}

// NewGatewayAt is NewGateway for functions located by loc, so the same code
// calls unbundled functions (stack.yml) or bundle members (stack.ce.yml).
func NewGatewayAt(loc gatewayurl.Locator, token string, hc *http.Client, callTimeout time.Duration) (*Gateway, error) {
	baseURL := loc.Gateway
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway URL %q must be an absolute http(s) URL", baseURL)
	}
	if token == "" {
		return nil, fmt.Errorf("the internal credential is empty")
	}
	if hc == nil {
		hc = &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport)}
	}
	if callTimeout <= 0 {
		callTimeout = 10 * time.Second
	}
	return &Gateway{loc: loc, token: token, hc: hc, callTimeout: callTimeout}, nil
}

type line struct {
	ProductID uuid.UUID `json:"product_id"`
	Quantity  int       `json:"quantity"`
}

// Reserve calls reserve-stock for all lines of an order.
func (g *Gateway) Reserve(ctx context.Context, orderID uuid.UUID, lines []orders.Line) error {
	in := struct {
		OrderID uuid.UUID `json:"order_id"`
		Lines   []line    `json:"lines"`
	}{OrderID: orderID}
	for _, l := range lines {
		in.Lines = append(in.Lines, line{l.ProductID, l.Quantity})
	}
	return g.call(ctx, "reserve-stock", in)
}

// Commit calls commit-stock.
func (g *Gateway) Commit(ctx context.Context, orderID uuid.UUID) error {
	return g.call(ctx, "commit-stock", orderRef{orderID})
}

// Release calls release-stock.
func (g *Gateway) Release(ctx context.Context, orderID uuid.UUID) error {
	return g.call(ctx, "release-stock", orderRef{orderID})
}

// Charge calls charge-payment.
func (g *Gateway) Charge(ctx context.Context, c Charge) error {
	return g.call(ctx, "charge-payment", struct {
		OrderID uuid.UUID    `json:"order_id"`
		UserID  uuid.UUID    `json:"user_id"`
		Amount  orders.Money `json:"amount"`
		Token   string       `json:"token"`
	}{c.OrderID, c.UserID, c.Amount, c.Token})
}

// Refund calls refund-payment.
func (g *Gateway) Refund(ctx context.Context, orderID uuid.UUID) error {
	return g.call(ctx, "refund-payment", orderRef{orderID})
}

type orderRef struct {
	OrderID uuid.UUID `json:"order_id"`
}

func (g *Gateway) call(ctx context.Context, fn string, in any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fault.Internalf("encode %s request: %w", fn, err)
	}
	ctx, cancel := context.WithTimeout(ctx, g.callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.loc.URL(fn), bytes.NewReader(body))
	if err != nil {
		return fault.Internalf("%s request: %w", fn, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(auth.InternalHeader, g.token)
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := g.hc.Do(req)
	if err != nil {
		return fault.Wrap(fmt.Errorf("%s: %w", fn, err), fault.Unavailable, "unavailable", fn+" is unavailable")
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(raw, &p)
	cause := fmt.Errorf("%s answered %d %s: %s", fn, resp.StatusCode, p.Code, p.Detail)
	switch {
	case resp.StatusCode == http.StatusConflict && (p.Code == "out_of_stock" || p.Code == "reservation_released"):
		msg := "not enough stock"
		if p.Code == "reservation_released" {
			msg = "the reservation was released"
		}
		if p.Detail != "" && p.Code == "out_of_stock" {
			msg = p.Detail
		}
		return fault.Wrap(cause, fault.Conflict, p.Code, msg)
	case resp.StatusCode == http.StatusPaymentRequired:
		return fault.Wrap(cause, fault.PaymentRequired, "payment_declined", "the payment was declined")
	case resp.StatusCode == http.StatusNotFound:
		return fault.Wrap(cause, fault.NotFound, "not_found", fn+": not found")
	case resp.StatusCode == http.StatusUnprocessableEntity:
		return fault.Wrap(cause, fault.Invalid, "invalid_request", fn+" refused the request")
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return fault.Wrap(cause, fault.Unavailable, "unavailable", fn+" is unavailable")
	}
	return fault.Internalf("%w", cause)
}
