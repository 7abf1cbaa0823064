package edge

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Options are what the edge needs besides the declarative file.
type Options struct {
	// Upstreams rewrites a service URL's host:port (e.g. gateway:8080, the
	// faasd gateway's name in compose) to a local address (127.0.0.1:8080);
	// it maps the rate-limiting plugin's redis host:port (redis:6379) too.
	Upstreams map[string]string
	// Log receives upstream failures (default slog.Default()).
	Log *slog.Logger
	// Getenv resolves {vault://env/NAME} references in the file (Kong's env
	// vault: NAME upper-cased, dashes as underscores), default os.Getenv.
	Getenv func(string) string
	// KeyPrefix prefixes every rate-limiting counter in Redis, so edges
	// sharing one Redis (tests, several runtimes) never share counters;
	// default "edge:<random>:".
	KeyPrefix string
	// Now is the clock of the rate-limiting windows (default time.Now).
	Now func() time.Time

	// scope is the route (or service) a plugin instance is built for.
	scope string
	// consumers are the file's consumers, for the jwt plugin.
	consumers []Consumer
	// shared holds what plugin instances of one edge share (Redis clients).
	shared *shared
}

// route is a compiled Kong route.
type route struct {
	service  string
	name     string
	upstream *url.URL
	methods  map[string]bool
	strip    bool
	preserve bool
	handler  http.Handler
}

// matcher is one path of one route, in Kong's evaluation order.
type matcher struct {
	route    *route
	regex    *regexp.Regexp // nil for a prefix path
	prefix   string
	priority int
	order    int
}

// Edge serves the routes of a declarative file.
type Edge struct {
	matchers []matcher
	notFound http.Handler
	shared   *shared
}

// Close releases the edge's Redis connections.
func (e *Edge) Close() error { return e.shared.close() }

// New compiles decl. Every plugin must be one the edge implements.
func New(decl *Declarative, opts Options) (*Edge, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "edge:" + uuid.NewString() + ":"
	}
	opts.consumers = decl.Consumers
	opts.shared = &shared{upstreams: opts.Upstreams, redis: map[string]*redis.Client{}}
	e := &Edge{shared: opts.shared}
	known := kinds()
	for _, p := range allPlugins(decl) {
		if _, ok := known[p.Name]; !ok {
			return nil, fmt.Errorf("plugin %q is not supported by the local edge (supported: %v)", p.Name, pluginNames(known))
		}
		if p.Consumer != "" {
			return nil, fmt.Errorf("plugin %q: consumer-scoped plugins are not supported by the local edge", p.Name)
		}
	}
	global, err := chain(scoped(decl, "", ""), known, opts, "global")
	if err != nil {
		_ = e.shared.close()
		return nil, err
	}
	e.notFound = global(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusNotFound, "not_found", "no route matches the request")
	}))
	order := 0
	for _, s := range decl.Services {
		transport := serviceTransport(s)
		up, _ := url.Parse(s.URL)
		if addr, ok := opts.Upstreams[up.Host]; ok {
			up.Host = addr
		}
		for _, r := range s.Routes {
			rt := &route{service: s.Name, name: r.Name, upstream: up, strip: r.StripPath == nil || *r.StripPath,
				preserve: r.PreserveHost}
			if len(r.Methods) > 0 {
				rt.methods = map[string]bool{}
				for _, m := range r.Methods {
					rt.methods[strings.ToUpper(m)] = true
				}
			}
			mw, err := chain(scoped(decl, s.Name, r.Name), known, opts, s.Name+":"+r.Name)
			if err != nil {
				_ = e.shared.close()
				return nil, err
			}
			rt.handler = mw(proxyTo(rt, transport, opts.Log))
			for _, p := range r.Paths {
				m := matcher{route: rt, priority: r.RegexPriority, order: order}
				order++
				if re, ok := strings.CutPrefix(p, "~"); ok {
					m.regex = regexp.MustCompile("^(?:" + re + ")")
				} else {
					m.prefix = p
				}
				e.matchers = append(e.matchers, m)
			}
		}
	}
	// Kong: regex paths first (higher regex_priority first), then prefix
	// paths, longest first; declaration order breaks ties.
	slices.SortStableFunc(e.matchers, func(a, b matcher) int {
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
	return e, nil
}

func pluginNames(m map[string]pluginKind) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// allPlugins lists every plugin instance of the file, wherever declared.
func allPlugins(d *Declarative) []Plugin {
	out := slices.Clone(d.Plugins)
	for _, s := range d.Services {
		out = append(out, s.Plugins...)
		for _, r := range s.Routes {
			out = append(out, r.Plugins...)
		}
	}
	return out
}

// PluginsFor returns the enabled plugins that apply to a route of a service,
// as Kong resolves them: the most specific instance of each plugin name wins
// (route, then service, then global). Empty service and route select the
// global plugins.
func (d *Declarative) PluginsFor(service, route string) []Plugin { return scoped(d, service, route) }

// scoped returns the enabled plugins applying to a route of a service, the
// most specific instance of each plugin name winning (route, then service,
// then global), as Kong does. Empty service and route select global plugins.
func scoped(d *Declarative, service, route string) []Plugin {
	chosen := map[string]Plugin{}
	rank := map[string]int{}
	take := func(p Plugin, r int) {
		if old, ok := rank[p.Name]; !ok || r > old {
			chosen[p.Name], rank[p.Name] = p, r
		}
	}
	for _, p := range d.Plugins {
		switch {
		case p.Service == "" && p.Route == "":
			take(p, 0)
		case p.Route != "" && p.Route == route:
			take(p, 2)
		case p.Route == "" && p.Service != "" && p.Service == service:
			take(p, 1)
		}
	}
	for _, s := range d.Services {
		if s.Name != service {
			continue
		}
		for _, p := range s.Plugins {
			take(p, 1)
		}
		for _, r := range s.Routes {
			if r.Name == route && route != "" {
				for _, p := range r.Plugins {
					take(p, 2)
				}
			}
		}
	}
	out := make([]Plugin, 0, len(chosen))
	for _, p := range chosen {
		if p.enabled() {
			out = append(out, p)
		}
	}
	return out
}

// chain builds the plugins' middleware, highest priority outermost.
func chain(ps []Plugin, known map[string]pluginKind, opts Options, scope string) (Middleware, error) {
	slices.SortFunc(ps, func(a, b Plugin) int { return cmp.Compare(known[b.Name].priority, known[a.Name].priority) })
	mws := make([]Middleware, 0, len(ps))
	opts.scope = scope
	for _, p := range ps {
		mw, err := known[p.Name].build(p.Config, &opts)
		if err != nil {
			return nil, err
		}
		mws = append(mws, mw)
	}
	return func(next http.Handler) http.Handler {
		for i := len(mws) - 1; i >= 0; i-- {
			next = mws[i](next)
		}
		return next
	}, nil
}

// ServeHTTP routes r to the first matching route in Kong's order; a request
// no route matches gets the global plugins and a 404 problem.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	for _, m := range e.matchers {
		var matched string
		if m.regex != nil {
			loc := m.regex.FindStringIndex(path)
			if loc == nil {
				continue
			}
			matched = path[:loc[1]]
		} else {
			if !strings.HasPrefix(path, m.prefix) {
				continue
			}
			matched = m.prefix
		}
		if m.route.methods != nil && !m.route.methods[r.Method] {
			continue
		}
		rest := path
		if m.route.strip {
			rest = strings.TrimPrefix(path, matched)
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = joinPath(m.route.upstream.Path, rest)
		r2.URL.RawPath = ""
		m.route.handler.ServeHTTP(w, r2)
		return
	}
	e.notFound.ServeHTTP(w, r)
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
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = rt.upstream.Scheme
			pr.Out.URL.Host = rt.upstream.Host
			if !rt.preserve {
				pr.Out.Host = rt.upstream.Host
			}
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("edge: upstream failed", "service", rt.service, "route", rt.name, "err", err.Error())
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				writeProblem(w, http.StatusGatewayTimeout, "upstream_timeout", "the upstream did not answer in time")
				return
			}
			writeProblem(w, http.StatusBadGateway, "bad_gateway", "the upstream did not answer")
		},
	}
}

// serviceTransport honours the service's Kong timeouts (milliseconds;
// Kong's default is 60000 each): connect_timeout bounds the dial,
// read_timeout the wait for the response headers. write_timeout has no
// separate knob in net/http; the request body is already buffered by
// request-size-limiting.
func serviceTransport(s Service) *http.Transport {
	ms := func(v *int) time.Duration {
		if v == nil || *v <= 0 {
			return 60 * time.Second
		}
		return time.Duration(*v) * time.Millisecond
	}
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: ms(s.ConnectTimeout), KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: ms(s.ReadTimeout),
	}
}
