// Package catalogclient reads products from the catalog service's
// get-product function, located on the OpenFaaS gateway
// ($GATEWAY_URL/function/get-product/api/v1/products/{id}) and called there or
// directly (internal/gatewayurl). It is what every service that needs a price
// uses, because prices come from the catalog, never from a client.
//
// Guarantees: every call has a deadline; the caller's trace context travels in
// the traceparent header (put there by the default client's transport,
// telemetry.Client, once per attempt); get-product's own 404 for the product
// (the not_found problem whose product_id member names it) is fault.NotFound
// and is never retried; any other failure (no answer, a failed answer, an
// answer that is not a valid product) is fault.Unavailable, after a bounded
// number of attempts when fault.Retryable allows another (the answer is
// mapped back by fnhttp.ErrorFrom: a 5xx, 429, or any 404 that is not
// get-product's for the product, such as the gateway's for a get-product that
// is not deployed or a route no function serves, are tried again; a 400 is
// not). So a misconfigured or missing get-product is an outage, never every
// product gone.
package catalogclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/gatewayurl"
)

// Money is an amount in integer minor units of an ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Product is what the catalog's get-product answers. Only products that are
// currently for sale are ever returned: an archived product is NotFound.
type Product struct {
	ID          uuid.UUID `json:"id"`
	SKU         string    `json:"sku"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Category    string    `json:"category"`
	Price       Money     `json:"price"`
	SoldCount   int64     `json:"sold_count"`
}

// Config configures a Client.
type Config struct {
	// Locator locates get-product: on the OpenFaaS gateway (Gateway, e.g.
	// http://gateway:8080, required), in its catalog bundle in the faasd-CE
	// stack (Bundled), and called without the gateway where Direct names it
	// (only by the default client, HTTP nil); see internal/gatewayurl.
	Locator gatewayurl.Locator
	// Timeout bounds one attempt (default 3s); the caller's context bounds the whole call.
	Timeout time.Duration
	// Attempts is how many times a call is tried in total while it fails
	// retryably (fault.Retryable: no answer, 5xx, 429; default 2).
	Attempts int
	// HTTP is the client to use; the default (gatewayurl.Locator.NewClient) is
	// instrumented with OpenTelemetry and sends the traceparent header, which
	// the client does not add itself: another client must send it.
	HTTP *http.Client
}

func (c *Config) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 2
	}
	if c.HTTP == nil {
		c.HTTP = c.Locator.NewClient()
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	u, err := url.Parse(c.Locator.Gateway)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("catalog client: gateway URL %q must be an absolute http(s) URL", c.Locator.Gateway)
	}
	return nil
}

// ConfigFrom reads GATEWAY_URL (and optionally FUNCTION_BUNDLES,
// FUNCTION_URLS, FUNCTION_URL_TEMPLATE and CATALOG_TIMEOUT) from c; c collects
// the problems.
func ConfigFrom(c *config.Reader) Config {
	return ConfigAt(c, gatewayurl.FromConfig(c))
}

// ConfigAt is ConfigFrom for a caller that has read its gateway.Locator
// already: it reads only CATALOG_TIMEOUT, so a bad FUNCTION_URLS is reported
// once.
func ConfigAt(c *config.Reader, loc gatewayurl.Locator) Config {
	return Config{Locator: loc, Timeout: c.Duration("CATALOG_TIMEOUT", 3*time.Second)}
}

// Client calls get-product. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, base: cfg.Locator.URL("get-product") + "/api/v1/products/"}, nil
}

// maxBody bounds a product answer; a product is well under 64 KiB.
const maxBody = 256 << 10

var errNotFound = fault.E(fault.NotFound, fault.CodeNotFound, "product not found")

// unavailable is what every failure other than a missing product becomes.
func unavailable(cause error) error {
	return fault.Wrap(cause, fault.Unavailable, fault.CodeUnavailable, "catalog temporarily unavailable")
}

// GetProduct returns the product id if it is for sale. It returns
// fault.NotFound when get-product answers its 404 for id (unknown or
// archived), and fault.Unavailable for every other failure, another 404
// included.
func (c *Client) GetProduct(ctx context.Context, id uuid.UUID) (Product, error) {
	var last error
	for attempt := 0; attempt < c.cfg.Attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return Product{}, unavailable(errors.Join(last, ctx.Err()))
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		p, retry, err := c.get(ctx, id)
		if err == nil {
			return p, nil
		}
		if !retry {
			return Product{}, err
		}
		last = err
	}
	return Product{}, last
}

// get makes one attempt and reports whether a failure is worth retrying.
func (c *Client) get(ctx context.Context, id uuid.UUID) (p Product, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+id.String(), nil)
	if err != nil {
		return p, false, fault.Internalf("catalog request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return p, true, unavailable(fmt.Errorf("get product %s: %w", id, err)) // no answer: an outage
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return p, true, unavailable(fmt.Errorf("read product %s: %w", id, err))
	}
	if resp.StatusCode/100 != 2 {
		answered := fnhttp.ErrorFrom(resp.StatusCode, body)
		if answered.Kind == fault.NotFound {
			if fnhttp.NotFoundNames(body, "product_id", id) {
				return p, false, errNotFound
			}
			// A 404 get-product did not answer for this product: a route
			// no function serves, a bundle without the member, the gateway
			// or faasd for a get-product not deployed, Kong or the edge for
			// an unknown route. A misconfiguration or a redeploy, never
			// "the product is gone": an outage, tried again.
			return p, true, unavailable(fmt.Errorf("get product %s: a 404 that is not get-product's answer for it: %w", id, answered))
		}
		return p, fault.Retryable(answered), unavailable(fmt.Errorf("get product %s: %w", id, answered))
	}
	if len(body) > maxBody {
		return p, false, unavailable(fmt.Errorf("get product %s: answer over %d bytes", id, maxBody))
	}
	p, err = decode(body, id)
	if errors.Is(err, errNotFound) {
		return p, false, err
	}
	if err != nil {
		return p, false, unavailable(err)
	}
	return p, false, nil
}

// decode parses and checks a get-product answer. A product marked archived
// (should the catalog ever answer one) is NotFound like a 404.
func decode(body []byte, id uuid.UUID) (Product, error) {
	var wire struct {
		Product
		Archived   bool            `json:"archived"`
		ArchivedAt json.RawMessage `json:"archived_at"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&wire); err != nil {
		return Product{}, fmt.Errorf("decode product %s: %w", id, err)
	}
	p := wire.Product
	switch {
	case p.ID != id:
		return Product{}, fmt.Errorf("catalog answered product %s for %s", p.ID, id)
	case p.Price.Amount < 0:
		return Product{}, fmt.Errorf("product %s has a negative price", id)
	case !validCurrency(p.Price.Currency):
		return Product{}, fmt.Errorf("product %s has currency %q", id, p.Price.Currency)
	}
	if wire.Archived || (len(wire.ArchivedAt) > 0 && string(wire.ArchivedAt) != "null") {
		return Product{}, errNotFound
	}
	return p, nil
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}
