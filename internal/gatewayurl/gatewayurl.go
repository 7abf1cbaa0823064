// Package gatewayurl locates a function for a call from another function. A
// caller always builds the function's gateway URL; the same code runs in both
// stacks: in stack.yml every function is its own OpenFaaS function at
// $GATEWAY_URL/function/<name>; in the bundled faasd-CE stack (stack.ce.yml,
// which sets FUNCTION_BUNDLES=true) a function is a member of its service's
// bundle and is reached at $GATEWAY_URL/function/<service>/_fn/<name>, which
// the bundle dispatches to the member with the rest of the path.
//
// The client's transport (Locator.Transport) may then send the call straight
// to the function (Direct: FUNCTION_URLS, FUNCTION_URL_TEMPLATE), one HTTP leg
// instead of two, and falls back to the gateway when the function's address
// refuses the connection. Without those variables, and always in the bundled
// stack, every call goes through the gateway.
package gatewayurl

import (
	"net/http"
	"net/url"
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
	// Direct names the functions Transport sends straight to their own
	// address; nil (always when Bundled) sends every call through the gateway.
	Direct *Direct
}

// FromConfig reads GATEWAY_URL (required), FUNCTION_BUNDLES (optional
// boolean, default false), FUNCTION_URLS and FUNCTION_URL_TEMPLATE (optional,
// see DirectFrom; ignored when FUNCTION_BUNDLES is true) from c; c collects
// the problems.
func FromConfig(c *config.Reader) Locator {
	gateway, bundled := c.Required("GATEWAY_URL"), Bundled(c)
	return Locator{Gateway: gateway, Bundled: bundled, Direct: DirectFrom(c, bundled)}
}

// Bundled reads FUNCTION_BUNDLES (optional boolean, default false) from c.
func Bundled(c *config.Reader) bool { return c.Bool("FUNCTION_BUNDLES", false) }

// Shown is the gateway URL raw as a log line may show it: the password of
// its userinfo (http://user:password@gateway:8080, which net/http sends as
// basic auth) replaced by "xxxxx" (url.URL.Redacted), and a user without a
// password (http://token@gateway:8080, which may be a token) too. A URL that
// does not parse is shown as "(unparsable)": it may hold the password whole.
func Shown(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); !ok {
			u.User = url.User("xxxxx")
		}
	}
	return u.Redacted()
}

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

// MaxIdlePerHost is how many idle keep-alive connections a client of
// NewClient or NewTransport keeps to each host (the gateway, or a function
// called directly): at least the calls a function makes at once, so a busy
// function reuses its connections instead of opening (and the gateway
// accepting) a new one for nearly every call, as Go's default of 2 does.
const MaxIdlePerHost = 64

// NewClient returns the HTTP client for calls of functions located by l: a
// traced transport (telemetry.Client: every call a client span naming the
// gateway URL, traceparent goes out with it) over l.Transport (direct calls
// where l.Direct allows) over NewTransport.
//
// The client follows no redirect (NoRedirect): a call's answer is the
// callee's own, a 3xx included, which the caller takes for a failure.
func (l Locator) NewClient() *http.Client {
	return &http.Client{Transport: telemetry.Client(l.Transport(NewTransport())), CheckRedirect: NoRedirect}
}

// NoRedirect is the CheckRedirect of every client that sends the internal
// credential (NewClient, the RabbitMQ connector's, the scheduler's, and
// faas-local's asynchronous queue worker): the 3xx itself is the answer.
// Following one, net/http re-sent a 307/308's POST with
// X-Internal-Token, Shop-Signature and the body to whatever host Location
// named (it strips only Authorization and Cookie across hosts), and turned a
// 301/302/303's POST into a GET without a body, whose 2xx the caller took for
// the callee's.
func NoRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewTransport is the transport under NewClient, for a caller that makes its
// own span per call (the RabbitMQ connector's delivery span) and wraps it in
// Locator.Transport itself: http.DefaultTransport's settings with up to
// MaxIdlePerHost idle connections per host.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = MaxIdlePerHost, MaxIdlePerHost
	return t
}

// MarkReplayable marks a request that is idempotent by its content (the
// callee does the same thing for the same body, e.g. by an order id or an
// event id it has already seen) as one net/http may send again: a header
// Idempotency-Key present with a nil value, which net/http treats as the mark
// and does not send. When such a request meets a kept-alive connection that
// the other side has closed (a replica killed or restarted), net/http sends it
// again on a new connection instead of failing the call; an unmarked POST
// fails, since it may have been delivered. Do not mark a call that is not
// idempotent.
func MarkReplayable(h http.Header) { h["Idempotency-Key"] = nil }
