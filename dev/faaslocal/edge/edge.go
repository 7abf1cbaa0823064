package edge

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Options are what the edge needs besides the declarative file.
type Options struct {
	// Upstreams rewrites a service URL's host:port (e.g. gateway:8080, the
	// faasd gateway's name in compose) to a local address (127.0.0.1:8080);
	// it maps the rate-limiting plugin's redis host:port (redis:6379) too.
	Upstreams map[string]string
	// RedisRoots are the authorities a rate limit's Redis certificate must
	// chain to when its redis block has ssl (Kong's
	// lua_ssl_trusted_certificate); nil: the system's roots.
	RedisRoots *x509.CertPool
	// Log receives upstream failures (default slog.Default()).
	Log *slog.Logger
	// Getenv resolves {vault://env/NAME} references in the file (Kong's env
	// vault: NAME upper-cased, dashes as underscores), default os.Getenv.
	Getenv func(string) string
	// KeyPrefix prefixes every rate-limiting counter in Redis, so edges
	// sharing one Redis (tests, several runtimes) never share counters;
	// default "ratelimit:edge:<random>:", under the ratelimit: prefix that
	// docker-compose.yml's Redis user kong may touch (as Kong's own keys).
	KeyPrefix string
	// Now is the clock of tokens and rate-limiting windows (default time.Now).
	Now func() time.Time
	// TracerProvider, when set, makes the opentelemetry plugin record a
	// server span per request, as Kong does, and continue the trace from it;
	// nil only propagates W3C trace context.
	TracerProvider trace.TracerProvider
	// Local serves a service host:port of the file (gateway:8080) by a
	// handler of this process: the edge calls it with the request the
	// upstream's server would have read, on the request's own goroutine,
	// instead of proxying over a loopback connection to a server of the
	// same process (the local runtime's gateway API); see localProxy.
	// An upgrade (websocket) request still goes over TCP to the Upstreams
	// address. Without an entry, a service is proxied over HTTP, as Kong
	// does.
	Local map[string]http.Handler
	// Registry is where the edge registers its Kong metrics, which Metrics
	// serves with whatever else the caller registered there (the local
	// runtime's count of the edge's failed span exports); one edge per
	// registry. Default: a registry of the edge's own.
	Registry *prometheus.Registry
}

func (o *Options) setDefaults() {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "ratelimit:edge:" + uuid.NewString() + ":"
	}
}

// Edge serves the routes of a declarative file.
type Edge struct {
	matchers []matcher
	notFound http.Handler
	redis    *redisPool
	metrics  *edgeMetrics
	// keepPublicPath: a plugin reads the path the client asked for
	// (publicPath): the opentelemetry plugin's url.path, a rate-limiting
	// plugin's limit_by path. Only then is it kept, at an allocation a request.
	keepPublicPath bool
}

// New compiles decl: every plugin must be one the edge implements, with a
// valid config. Close releases what it holds.
func New(decl *Declarative, opts Options) (*Edge, error) {
	opts.setDefaults()
	known := kinds()
	for _, p := range decl.allPlugins() {
		if _, ok := known[p.Name]; !ok {
			return nil, fmt.Errorf("plugin %q is not supported by the local edge (supported: %v)", p.Name, Plugins())
		}
		if p.Consumer != "" {
			return nil, fmt.Errorf("plugin %q: consumer-scoped plugins are not supported by the local edge", p.Name)
		}
	}
	e := &Edge{redis: newRedisPool(opts.Upstreams, opts.RedisRoots), metrics: newEdgeMetrics(opts.Registry), keepPublicPath: opts.TracerProvider != nil}
	scopeOf := func(name, route string) *scope {
		return &scope{name: name, consumers: decl.Consumers, getenv: opts.Getenv, now: opts.Now, log: opts.Log,
			keyPrefix: opts.KeyPrefix, redis: e.redis, route: route, tracing: opts.TracerProvider, metrics: e.metrics,
			keepPublicPath: &e.keepPublicPath}
	}
	unrouted := scopeOf("global", "")
	unrouted.unrouted = true
	global, err := chain(decl.PluginsFor("", ""), known, unrouted)
	if err != nil {
		return nil, closeOnError(e, err)
	}
	e.notFound = global(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusNotFound, fault.CodeNotFound, "no route matches the request")
	}))
	for _, s := range decl.Services {
		up, _ := url.Parse(s.URL) // validated by Parse
		transport := serviceTransport(s)
		local, inProcess := opts.Local[up.Host]
		if addr, ok := opts.Upstreams[up.Host]; ok {
			up.Host = addr
		}
		for _, r := range s.Routes {
			mw, err := chain(decl.PluginsFor(s.Name, r.Name), known, scopeOf(s.Name+":"+r.Name, routeTemplate(r.Paths)))
			if err != nil {
				return nil, closeOnError(e, err)
			}
			rt := newRoute(s.Name, r, up)
			proxy := proxyTo(rt, transport, opts.Log)
			if inProcess {
				proxy = &localProxy{rt: rt, handler: local, tcp: proxy, headerTimeout: readTimeout(s),
					fail: upstreamFailed(rt, opts.Log), log: opts.Log}
			}
			rt.handler = mw(proxy)
			e.matchers = append(e.matchers, rt.matchers(len(e.matchers))...)
		}
	}
	sortMatchers(e.matchers)
	return e, nil
}

// routeTemplate turns a route's first path (a Kong regex such as
// ~/api/v1/orders/[^/%]+/timeline$) into the template a span names it by
// (/api/v1/orders/{id}/timeline).
func routeTemplate(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	p := strings.TrimSuffix(strings.TrimPrefix(paths[0], "~"), "$")
	return strings.ReplaceAll(p, "[^/%]+", "{id}")
}

func closeOnError(e *Edge, err error) error {
	if cerr := e.Close(); cerr != nil {
		return fmt.Errorf("%w (and closing: %v)", err, cerr)
	}
	return err
}

// Close releases the edge's Redis connections and reports what failed.
func (e *Edge) Close() error {
	return e.redis.close()
}

// ServeHTTP routes r to the first matching route in Kong's order; a request
// no route matches gets the global plugins and a 404 problem.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Kong normalises the path as kongNormalize does before it matches
	// routes, and proxies the normalised path; so does this edge, so
	// /api/v1/products/.. never reaches a function, whose mux would answer
	// it with a redirect naming its internal /function/<name> path, and an
	// encoded slash (%2F) stays one: a route that matches here matches on
	// Kong, and one that does not match here does not there either.
	//
	// The path as the client sent it: EscapedPath would re-escape the
	// decoded path (a %2F made a slash) whenever the raw one holds a byte
	// Go does not take as escaped ({, |, a raw UTF-8 octet), and Kong
	// normalises the request line as sent.
	raw := r.URL.RawPath
	if raw == "" {
		raw = r.URL.EscapedPath()
	}
	path := kongNormalize(raw)
	for _, m := range e.matchers {
		matched, ok := m.match(path)
		if !ok || (m.route.methods != nil && !m.route.methods[r.Method]) {
			continue
		}
		rest := path
		if m.route.strip {
			rest = strings.TrimPrefix(path, matched)
		}
		ctx := r.Context()
		if e.keepPublicPath {
			ctx = context.WithValue(ctx, publicPathKey{}, path)
		}
		r2 := r.Clone(ctx)
		// Kong sets X-Forwarded-Port itself and X-Forwarded-Prefix only
		// for a route that strips its path (none here), whatever an
		// untrusted client sent: a client's own must not reach the
		// function (api-docs builds its servers entry from them). It
		// overwrites X-Real-IP and X-Forwarded-Path with its own too,
		// which this edge does not set: a client's are dropped.
		delete(r2.Header, "X-Forwarded-Port")
		delete(r2.Header, "X-Forwarded-Prefix")
		delete(r2.Header, "X-Real-Ip")
		delete(r2.Header, "X-Forwarded-Path")
		r2.URL.RawPath = kongEscape(joinPath(m.route.upstream.Path, rest))
		p, err := url.PathUnescape(r2.URL.RawPath)
		// Unreachable through a server: net/http refuses a path with a
		// malformed escape (a lone %) with 400 before any handler, as
		// nginx does under Kong (ngx_http_parse_complex_uri), and the
		// normalised path keeps only well-formed escapes. Kept so that
		// such a path is refused rather than sent upstream undecoded.
		if err != nil {
			writeProblem(w, http.StatusBadRequest, fault.CodeInvalidRequest, "the path is not a valid URL path")
			return
		}
		r2.URL.Path = p
		m.route.handler.ServeHTTP(w, r2)
		return
	}
	e.notFound.ServeHTTP(w, r)
}

// publicPathKey holds, in a routed request's context, the path the client
// asked for (the request's own path is already the upstream's).
type publicPathKey struct{}

// publicPath is the path the client asked for.
func publicPath(r *http.Request) string {
	if p, ok := r.Context().Value(publicPathKey{}).(string); ok {
		return p
	}
	return r.URL.Path
}

// kongNormalize is the path Kong 3 routes by and proxies, from the path as
// the client escaped it (kong/tools/uri.lua, normalize(uri, true)): a
// percent-encoded octet is decoded unless it is one of RFC 3986's reserved
// characters (gen-delims, sub-delims and % itself), which stay encoded with
// upper-case hex, in one pass (%252e is %252e); runs of slashes are merged;
// then dot segments are removed, a decoded %2e counting as a dot.
func kongNormalize(escaped string) string {
	if strings.Contains(escaped, "%") {
		b := make([]byte, 0, len(escaped))
		for i := 0; i < len(escaped); i++ {
			if escaped[i] == '%' && i+2 < len(escaped) && isHex(escaped[i+1]) && isHex(escaped[i+2]) {
				c := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
				if strings.IndexByte(reservedChars, c) >= 0 {
					b = append(b, '%', upperHex(escaped[i+1]), upperHex(escaped[i+2]))
				} else {
					b = append(b, c)
				}
				i += 2
				continue
			}
			b = append(b, escaped[i])
		}
		escaped = string(b)
	}
	for strings.Contains(escaped, "//") {
		escaped = strings.ReplaceAll(escaped, "//", "/")
	}
	return removeDotSegments(escaped)
}

// kongEscape is how Kong 3 writes the path it proxies (kong/tools/uri.lua,
// escape): every byte but letters, digits, -._~, the reserved characters
// and % percent-encoded, so what normalising decoded (a space, a UTF-8
// octet) goes upstream encoded again, and an encoded slash stays one.
func kongEscape(p string) string {
	n := 0
	for i := 0; i < len(p); i++ {
		if !kongSafe(p[i]) {
			n++
		}
	}
	if n == 0 {
		return p
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(p)+2*n)
	for i := 0; i < len(p); i++ {
		if c := p[i]; kongSafe(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// kongSafe reports whether Kong proxies c as it is.
func kongSafe(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("-_.~!#$&'()*+,/:;=?@[]%", c) >= 0
}

// reservedChars are the characters Kong leaves percent-encoded.
const reservedChars = "!*'();:@&=+$,/?%#[]"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// removeDotSegments is RFC 3986 section 5.2.4 for an absolute path: "." and
// ".." segments are resolved ("/a/b/../c/." is "/a/c/"); other segments,
// empty ones included, are kept.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")[1:] // p starts with "/"
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

// writeProblem answers with the project's problem body.
func writeProblem(w http.ResponseWriter, status int, code fault.Code, detail string) {
	p := fnhttp.Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: string(code), Detail: detail}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}
