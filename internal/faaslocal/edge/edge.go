package edge

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Options are what the edge needs besides the declarative file.
type Options struct {
	// Upstreams rewrites a service URL's host:port (e.g. gateway:8080, the
	// faasd gateway's name in compose) to a local address (127.0.0.1:8080).
	Upstreams map[string]string
	// Log receives upstream failures (default slog.Default()).
	Log *slog.Logger
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
}

// New compiles decl. Every plugin must be one the edge implements.
func New(decl *Declarative, opts Options) (*Edge, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	e := &Edge{}
	known := kinds()
	for _, p := range allPlugins(decl) {
		if _, ok := known[p.Name]; !ok {
			return nil, fmt.Errorf("plugin %q is not supported by the local edge (supported: %v)", p.Name, pluginNames(known))
		}
		if p.Consumer != "" {
			return nil, fmt.Errorf("plugin %q: consumer-scoped plugins are not supported by the local edge", p.Name)
		}
	}
	global, err := chain(scoped(decl, "", ""), known, &opts)
	if err != nil {
		return nil, err
	}
	e.notFound = global(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusNotFound, "not_found", "no route matches the request")
	}))
	transport := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute}
	order := 0
	for _, s := range decl.Services {
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
			mw, err := chain(scoped(decl, s.Name, r.Name), known, &opts)
			if err != nil {
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
func chain(ps []Plugin, known map[string]pluginKind, opts *Options) (Middleware, error) {
	slices.SortFunc(ps, func(a, b Plugin) int { return cmp.Compare(known[b.Name].priority, known[a.Name].priority) })
	mws := make([]Middleware, 0, len(ps))
	for _, p := range ps {
		mw, err := known[p.Name].build(p.Config, opts)
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
			writeProblem(w, http.StatusBadGateway, "bad_gateway", "the upstream did not answer")
		},
	}
}
