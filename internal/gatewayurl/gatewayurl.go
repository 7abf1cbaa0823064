// Package gatewayurl locates a function on the OpenFaaS gateway, the only way
// one function may call another. The same code runs in both stacks: in
// stack.yml every function is its own OpenFaaS function at
// $GATEWAY_URL/function/<name>; in the bundled faasd-CE stack (stack.ce.yml,
// which sets FUNCTION_BUNDLES=true) a function is a member of its service's
// bundle and is reached at $GATEWAY_URL/function/<service>/_fn/<name>, which
// the bundle dispatches to the member with the rest of the path.
package gatewayurl

import (
	"net/http"
	"strings"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/routes"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Locator turns function names into invocation URLs on one gateway. The zero
// Bundled value locates the unbundled stack.yml functions.
type Locator struct {
	// Gateway is the gateway's base URL, e.g. http://gateway:8080.
	Gateway string
	// Bundled is true in the bundled faasd-CE stack (env FUNCTION_BUNDLES=true).
	Bundled bool
}

// FromConfig reads GATEWAY_URL (required) and FUNCTION_BUNDLES (optional
// boolean, default false) from c; c collects the problems.
func FromConfig(c *config.Reader) Locator {
	return Locator{Gateway: c.Required("GATEWAY_URL"), Bundled: Bundled(c)}
}

// Bundled reads FUNCTION_BUNDLES (optional boolean, default false) from c.
func Bundled(c *config.Reader) bool { return c.Bool("FUNCTION_BUNDLES", false) }

// URL returns the URL that invokes function with an empty path; a caller
// appends the function's own path (e.g. /api/v1/products/<id>) to it. A
// function missing from the route table is located as an unbundled function.
func (l Locator) URL(function string) string {
	base := strings.TrimRight(l.Gateway, "/") + "/function/"
	if l.Bundled {
		if b, ok := routes.Bundle(function); ok {
			return base + b + strings.TrimSuffix(routes.InternalPrefix, "/") + "/" + function
		}
	}
	return base + function
}

// URL returns the URL of function on gateway in the unbundled stack
// (stack.yml), or in the bundled stack when bundled is true.
func URL(gateway, function string, bundled bool) string {
	return Locator{Gateway: gateway, Bundled: bundled}.URL(function)
}

// MaxIdlePerHost is how many idle keep-alive connections a NewClient keeps to
// the gateway: at least the calls a function makes at once, so a busy
// function reuses its connections instead of opening (and the gateway
// accepting) a new one for nearly every call, as Go's default of 2 does.
const MaxIdlePerHost = 64

// NewClient returns the HTTP client for calls through the gateway: a traced
// transport (telemetry.Client: every call a client span, traceparent goes out
// with it) that keeps up to MaxIdlePerHost idle connections to it.
func NewClient() *http.Client {
	return &http.Client{Transport: telemetry.Client(NewTransport())}
}

// NewTransport is NewClient's transport without the client spans, for a
// caller that makes its own span per call (the RabbitMQ connector's delivery
// span): http.DefaultTransport's settings with up to MaxIdlePerHost idle
// connections to the gateway.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = MaxIdlePerHost, MaxIdlePerHost
	return t
}
