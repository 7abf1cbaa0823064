package gatewayurl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/shopfaas/shop/internal/config"
)

// Direct says which functions a caller may reach at their own base URL (a
// function's watchdog port: its Kubernetes Service, or the port the local
// runtime gives all of a function's replicas) instead of through the gateway:
// every function named in FUNCTION_URLS and, with FUNCTION_URL_TEMPLATE, every
// other one. A nil *Direct names none. It is safe for concurrent use.
type Direct struct {
	urls     map[string]*url.URL
	template string
	// templated holds the template's base URL per function name, built on
	// first use (the names are those a process calls: a handful).
	templated sync.Map
}

// NameVar is the template's placeholder for the function name.
const NameVar = "{name}"

// DirectFrom reads FUNCTION_URLS (optional, comma-separated name=base-url
// pairs, base-url http(s)://host[:port] without a path) and
// FUNCTION_URL_TEMPLATE (optional, a base URL containing {name}, for every
// function FUNCTION_URLS does not name, e.g.
// http://{name}.openfaas-fn.svc.cluster.local:8080) from c; c collects the
// problems, each naming the variable and the bad entry. It returns nil when
// neither is set, and nil when bundled whatever they say: the bundled faasd-CE
// stack (FUNCTION_BUNDLES=true) calls every function through the gateway,
// which dispatches to a bundle's members.
func DirectFrom(c *config.Reader, bundled bool) *Direct {
	list, template := c.String("FUNCTION_URLS", ""), c.String("FUNCTION_URL_TEMPLATE", "")
	urls, err := parseURLs(list)
	if err != nil {
		c.Fail("FUNCTION_URLS", err)
	}
	if err := checkTemplate(template); err != nil {
		c.Fail("FUNCTION_URL_TEMPLATE", err)
	}
	if bundled || (len(urls) == 0 && template == "") {
		return nil
	}
	return &Direct{urls: urls, template: template}
}

// ParseDirect is DirectFrom for values a caller holds (list as
// FUNCTION_URLS, template as FUNCTION_URL_TEMPLATE); it returns nil when
// both are empty.
func ParseDirect(list, template string) (*Direct, error) {
	c := config.New(config.Env(map[string]string{"FUNCTION_URLS": list, "FUNCTION_URL_TEMPLATE": template}))
	d := DirectFrom(c, false)
	return d, c.Err()
}

// parseURLs parses FUNCTION_URLS, reporting every bad entry.
func parseURLs(list string) (map[string]*url.URL, error) {
	urls := map[string]*url.URL{}
	var errs []error
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, raw, ok := strings.Cut(entry, "=")
		name, raw = strings.TrimSpace(name), strings.TrimSpace(raw)
		if !ok {
			errs = append(errs, fmt.Errorf("entry %q is not name=base-url", entry))
			continue
		}
		if !validName(name) {
			errs = append(errs, fmt.Errorf("entry %q: %q is not a function name", entry, name))
			continue
		}
		if urls[name] != nil {
			errs = append(errs, fmt.Errorf("entry %q: function %s is named twice", entry, name))
			continue
		}
		u, err := parseBase(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %q: %w", entry, err))
			continue
		}
		urls[name] = u
	}
	return urls, errors.Join(errs...)
}

// checkTemplate reports a template that cannot give a base URL.
func checkTemplate(template string) error {
	if template == "" {
		return nil
	}
	if !strings.Contains(template, NameVar) {
		return fmt.Errorf("%q does not contain %s", template, NameVar)
	}
	if _, err := parseBase(strings.ReplaceAll(template, NameVar, "get-product")); err != nil {
		return fmt.Errorf("%q: %w", template, err)
	}
	return nil
}

// parseBase parses a base URL: http(s)://host[:port] with no path, query,
// fragment or user.
func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("base URL %q must be http(s)://host[:port] without a path", raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// validName reports whether name is an OpenFaaS function name (a DNS-1123
// label), so a name taken from a request path cannot change the template's
// host beyond its label.
func validName(name string) bool {
	if name == "" || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// Base returns the base URL at which function may be called directly, and
// false when it must be called through the gateway.
func (d *Direct) Base(function string) (*url.URL, bool) {
	if d == nil {
		return nil, false
	}
	if u, ok := d.urls[function]; ok {
		return u, true
	}
	if d.template == "" || !validName(function) {
		return nil, false
	}
	if u, ok := d.templated.Load(function); ok {
		return u.(*url.URL), true
	}
	u, err := parseBase(strings.ReplaceAll(d.template, NameVar, function))
	if err != nil {
		return nil, false
	}
	d.templated.Store(function, u)
	return u, true
}

// Transport returns next wrapped so that a request for
// <Gateway>/function/<name>[/<rest>] whose <name> has a direct base URL
// (l.Direct) is sent to <base-url>/<rest> instead, query, method, headers and
// body unchanged; requests for other URLs, and every request when l has no
// direct URLs or is Bundled, pass to next untouched. Callers keep building
// gateway URLs (URL), so their spans, logs and errors name the function.
//
// When the direct connection cannot be made (a *net.OpError with Op "dial":
// refused, no such host, or not made within DirectDialTimeout), nothing was
// sent, and the same request goes to the gateway, which can start a replica.
// The bound matters for an address that drops packets instead of refusing
// them (a pod gone whose IP nobody answers): without it the call would wait
// for the system's connect timeout, or its own deadline, before falling back. When the direct
// call fails after that (the connection reset or closed before an answer: a
// replica killed, or one closing its share of the function's port while a
// connection waited in it), the request may have been delivered, and it goes
// to the gateway only when it may be sent twice: a GET, HEAD, OPTIONS or
// TRACE, or a call marked replayable (MarkReplayable) — as through the
// gateway, whose forwarder sends such a call to another replica. Any other
// error is returned as is, and so is every error once the request's context
// has ended. A request with a body needs req.GetBody to go again
// (http.NewRequest sets it for in-memory bodies), without which the error is
// returned.
func (l Locator) Transport(next http.RoundTripper) http.RoundTripper {
	if l.Direct == nil || l.Bundled {
		return next
	}
	gw, err := url.Parse(strings.TrimRight(l.Gateway, "/"))
	if err != nil || gw.Host == "" {
		return next
	}
	return &directTransport{next: next, toFunction: boundDial(next), direct: l.Direct,
		scheme: gw.Scheme, host: gw.Host, prefix: gw.EscapedPath() + "/function/"}
}

// DirectDialTimeout bounds the connection to a function's own address (a
// connect on one machine or within a cluster takes well under a
// millisecond; Linux resends a lost SYN after a second). Past it the call
// goes to the gateway.
const DirectDialTimeout = time.Second

// boundDial returns a copy of next whose connections are made within
// DirectDialTimeout, or next itself when it is not an *http.Transport. The
// copy keeps its own pool, of the functions' own addresses.
func boundDial(next http.RoundTripper) http.RoundTripper {
	t, ok := next.(*http.Transport)
	if !ok {
		return next
	}
	t = t.Clone()
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, DirectDialTimeout)
		defer cancel()
		return dial(ctx, network, addr)
	}
	return t
}

// directTransport is Locator.Transport's round tripper.
type directTransport struct {
	next         http.RoundTripper // to the gateway
	toFunction   http.RoundTripper // next, connecting within DirectDialTimeout
	direct       *Direct
	scheme, host string
	prefix       string // the escaped path of the gateway's /function/
}

func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	target, ok := t.target(req.URL)
	if !ok {
		return t.next.RoundTrip(req)
	}
	direct := *req
	direct.URL, direct.Host = target, ""
	res, err := t.toFunction.RoundTrip(&direct)
	if err == nil || req.Context().Err() != nil {
		return res, err
	}
	var op *net.OpError
	if notSent := errors.As(err, &op) && op.Op == "dial"; !notSent && !replayable(req) {
		return res, err
	}
	if req.Body == nil || req.Body == http.NoBody {
		return t.next.RoundTrip(req)
	}
	if req.GetBody == nil {
		return nil, err
	}
	body, gerr := req.GetBody()
	if gerr != nil {
		return nil, errors.Join(err, gerr)
	}
	viaGateway := *req
	viaGateway.Body = body
	return t.next.RoundTrip(&viaGateway)
}

// replayable is net/http's own rule for a request it may send again: an
// idempotent method, or an Idempotency-Key or X-Idempotency-Key header,
// present even with a nil value (MarkReplayable).
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// target returns the direct URL for u, or false when u is not a call of a
// function with a direct base URL.
func (t *directTransport) target(u *url.URL) (*url.URL, bool) {
	if !strings.EqualFold(u.Scheme, t.scheme) || !strings.EqualFold(u.Host, t.host) {
		return nil, false
	}
	rest, ok := strings.CutPrefix(u.EscapedPath(), t.prefix)
	if !ok {
		return nil, false
	}
	name, rest, _ := strings.Cut(rest, "/")
	base, ok := t.direct.Base(name)
	if !ok {
		return nil, false
	}
	path, err := url.PathUnescape("/" + rest)
	if err != nil {
		return nil, false
	}
	out := *base
	out.Path, out.RawPath, out.RawQuery = path, "/"+rest, u.RawQuery
	return &out, true
}
