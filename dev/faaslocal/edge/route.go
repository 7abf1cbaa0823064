package edge

import (
	"cmp"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shopfaas/shop/internal/fault"
)

// route is a compiled Kong route.
type route struct {
	service  string
	name     string
	upstream *url.URL
	methods  map[string]bool // nil: any method
	strip    bool
	preserve bool
	paths    []string
	priority int
	handler  http.Handler
}

func newRoute(service string, r Route, upstream *url.URL) *route {
	rt := &route{service: service, name: r.Name, upstream: upstream, strip: r.StripPath == nil || *r.StripPath,
		preserve: r.PreserveHost, paths: r.Paths, priority: r.RegexPriority}
	if len(r.Methods) > 0 {
		rt.methods = map[string]bool{}
		for _, m := range r.Methods {
			rt.methods[strings.ToUpper(m)] = true
		}
	}
	return rt
}

// matcher is one path of one route, in Kong's evaluation order.
type matcher struct {
	route    *route
	regex    *regexp.Regexp // nil for a prefix path
	prefix   string
	priority int
	order    int // declaration order, for ties
}

// matchers are the route's paths, numbered from order on.
func (rt *route) matchers(order int) []matcher {
	out := make([]matcher, 0, len(rt.paths))
	for i, p := range rt.paths {
		m := matcher{route: rt, priority: rt.priority, order: order + i}
		if re, ok := strings.CutPrefix(p, "~"); ok {
			m.regex = regexp.MustCompile("^(?:" + re + ")") // validated by Parse
		} else {
			m.prefix = p
		}
		out = append(out, m)
	}
	return out
}

// match returns the part of path the matcher matched.
func (m matcher) match(path string) (string, bool) {
	if m.regex != nil {
		loc := m.regex.FindStringIndex(path)
		if loc == nil {
			return "", false
		}
		return path[:loc[1]], true
	}
	return m.prefix, strings.HasPrefix(path, m.prefix)
}

// sortMatchers puts ms in Kong's order: regex paths first (higher
// regex_priority first), then prefix paths, longest first; declaration
// order breaks ties.
func sortMatchers(ms []matcher) {
	slices.SortStableFunc(ms, func(a, b matcher) int {
		switch {
		case a.regex != nil && b.regex == nil:
			return -1
		case a.regex == nil && b.regex != nil:
			return 1
		case a.regex != nil:
			return cmp.Or(cmp.Compare(b.priority, a.priority), cmp.Compare(a.order, b.order))
		}
		return cmp.Or(cmp.Compare(len(b.prefix), len(a.prefix)), cmp.Compare(a.order, b.order))
	})
}

// joinPath appends the request path to the service path (Kong's v0 path handling).
func joinPath(service, rest string) string {
	switch {
	case service == "" || service == "/":
		if rest == "" {
			return "/"
		}
		return "/" + strings.TrimPrefix(rest, "/")
	case rest == "":
		return service
	}
	return strings.TrimSuffix(service, "/") + "/" + strings.TrimPrefix(rest, "/")
}

// proxyTo forwards to the route's upstream with Kong's X-Forwarded-* headers.
func proxyTo(rt *route, transport http.RoundTripper, log *slog.Logger) http.Handler {
	return &httputil.ReverseProxy{
		Transport:  transport,
		BufferPool: copyBuffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The query as the client sent it, as Kong forwards it:
			// ReverseProxy has re-encoded one with a bad escape or a
			// ';' without what did not parse, and the function must
			// see it to refuse it (400 invalid_request).
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.Out.URL.Scheme = rt.upstream.Scheme
			pr.Out.URL.Host = rt.upstream.Host
			if !rt.preserve {
				pr.Out.Host = rt.upstream.Host
			}
			pr.SetXForwarded()
		},
		ErrorHandler: upstreamFailed(rt, log),
	}
}

// upstreamFailed is the edge's answer when the upstream gave none: 504 on
// the service's read_timeout, else 502.
func upstreamFailed(rt *route, log *slog.Logger) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, _ *http.Request, err error) {
		log.Warn("edge: upstream failed", "service", rt.service, "route", rt.name, "err", err.Error())
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			writeProblem(w, http.StatusGatewayTimeout, fault.CodeUpstreamTimeout, "the upstream did not answer in time")
			return
		}
		writeProblem(w, http.StatusBadGateway, fault.CodeBadGateway, "the upstream did not answer")
	}
}

// copyBuffers are the buffers the proxy copies answers through: without a
// pool, httputil.ReverseProxy allocates 32 KiB for every request.
var copyBuffers httputil.BufferPool = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// serviceTransport honours the service's Kong timeouts (milliseconds;
// Kong's default is 60000 each): connect_timeout bounds the dial,
// read_timeout the wait for the response headers. write_timeout has no
// separate knob in net/http; the request body is already buffered by
// request-size-limiting.
func serviceTransport(s Service) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: kongTimeout(s.ConnectTimeout), KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: readTimeout(s),
	}
}

// readTimeout is the service's read_timeout: the wait for the answer's headers.
func readTimeout(s Service) time.Duration { return kongTimeout(s.ReadTimeout) }

// kongTimeout is a Kong timeout in milliseconds, 60 s when unset.
func kongTimeout(v *int) time.Duration {
	if v == nil || *v <= 0 {
		return 60 * time.Second
	}
	return time.Duration(*v) * time.Millisecond
}
