// Package orderstatus is the inventory sweep's client of order-statuses, the
// orders service's internal function that answers the status of a batch of
// orders: expire-reservations settles held holds by it
// (inventorydb.Store.Settle). It is located on the OpenFaaS gateway like any
// other function and called there or directly (internal/gatewayurl), with the
// sweep's own internal credential (internal-token-expire-reservations).
package orderstatus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/inventory"
)

// Function is the function the client calls.
const Function = "order-statuses"

// MaxIDs is the most ids one call may ask about (order-statuses' bound).
const MaxIDs = 500

// Client calls order-statuses. It is safe for concurrent use.
type Client struct {
	url    string
	token  string
	hc     *http.Client
	budget time.Duration
}

// New returns a client of order-statuses located by loc, sending the
// internal credential token; hc may be nil (loc.NewClient), timeout
// bounds one call (default 10s).
func New(loc gatewayurl.Locator, token string, hc *http.Client, timeout time.Duration) (*Client, error) {
	if loc.Gateway == "" {
		return nil, fmt.Errorf("orderstatus: the gateway URL is empty")
	}
	if token == "" {
		return nil, fmt.Errorf("orderstatus: the internal credential is empty")
	}
	if hc == nil {
		hc = loc.NewClient()
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Client{url: loc.URL(Function), token: token, hc: hc, budget: timeout}, nil
}

// Statuses asks order-statuses the status of every order of ids (at most
// MaxIDs) and returns those the orders service knows; an unknown order is
// absent. Any failure — no answer, an error answered, an answer that is not
// the statuses of the orders asked about — is an error: the caller then
// changes nothing. No answer, every answer but 200 (a 401 or 403 that
// refuses this client's credential too) and a 200 that is not the statuses
// of the orders asked about are fault.Unavailable: order-statuses failed,
// and the sweep answers its own caller 503 (the next run asks again), never
// the callee's status nor a 500 of its own (until 2026-12-07 a malformed
// 200 was fault.Internal).
func (c *Client) Statuses(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]inventory.OrderStatus, error) {
	if len(ids) == 0 {
		return map[uuid.UUID]inventory.OrderStatus{}, nil
	}
	if len(ids) > MaxIDs {
		return nil, fault.Internalf("orderstatus: %d ids in one call, at most %d", len(ids), MaxIDs)
	}
	body, err := json.Marshal(struct {
		OrderIDs []uuid.UUID `json:"order_ids"`
	}{ids})
	if err != nil {
		return nil, fault.Internalf("encode %s request: %w", Function, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.budget)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fault.Internalf("%s request: %w", Function, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(auth.InternalHeader, c.token)
	// order-statuses only reads (one read-only query), so the call may be
	// sent again.
	gatewayurl.MarkReplayable(req.Header)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, unavailable(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, unavailable(err)
	}
	if resp.StatusCode != http.StatusOK {
		// Every refusal is this client's failure, not its caller's: a 401
		// or 403 refuses the sweep's own credential
		// (internal-token-expire-reservations), which the scheduler must
		// not read as a refusal of its own (docs/runbooks/reservation-sweep.md).
		return nil, unavailable(fnhttp.ErrorFrom(resp.StatusCode, raw))
	}
	var out struct {
		Statuses map[uuid.UUID]inventory.OrderStatus `json:"statuses"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Statuses == nil {
		return nil, unavailable(fmt.Errorf("answered 200 without the statuses: %.200q", raw))
	}
	asked := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
	}
	for id := range out.Statuses {
		if !asked[id] {
			return nil, unavailable(fmt.Errorf("answered the status of order %s, which was not asked about", id))
		}
	}
	return out.Statuses, nil
}

// unavailable is cause, a failure to get the statuses, as fault.Unavailable
// naming order-statuses: the caller answers its own caller 503.
func unavailable(cause error) error {
	return fault.Wrap(fmt.Errorf("%s: %w", Function, cause), fault.Unavailable, fault.CodeUnavailable, Function+" is unavailable")
}
