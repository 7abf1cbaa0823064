// Package bundle serves several functions of one service as ONE OpenFaaS
// function, for the faasd-CE stack (stack.ce.yml), which may deploy at most 15
// functions. The member functions' Build run unchanged; the bundle only
// decides which member a request is for, from the route table
// (internal/routes):
//
//  1. POST /_fn/<member>[/rest] (routes.InternalPrefix) is a call from another
//     function, located by internal/gatewayurl: it reaches <member> with the
//     path rewritten to /rest, or / when there is no rest.
//  2. A request whose method and path match a member's public route (the edge
//     forwards the public path, strip_path: false) reaches that member as is.
//     When several routes match, the one with the most literal segments wins.
//  3. A request to / with X-Topic (the RabbitMQ connector) reaches the member
//     subscribed to that topic; an unknown topic is 404.
//  4. A request to / with X-Scheduled-At (the scheduler) reaches the service's
//     one scheduled member.
//  5. Anything else is answered 404 with a not_found problem.
//
// Members keep their own checks (token, internal credential, body limits):
// the bundle adds no trust, it only routes.
package bundle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/routes"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Bundle dispatches requests to the members of one service. It is safe for
// concurrent use.
type Bundle struct {
	service   string
	byName    map[string]http.Handler
	public    []member
	topics    map[string]string // topic -> member
	scheduled string
	log       *slog.Logger
}

type member struct {
	route    routes.Route
	literals int
}

// Lazy returns, for every member, a handler that builds the member with its
// Build on the member's own first request or the bundle's first readiness
// check (fnhttp.Lazy, from a fresh reading of c's environment each time): a
// member whose dependency is down answers its calls 503 and is built again
// later, while its siblings answer theirs. Readiness is another matter: the
// bundle is ready only when every member is built (Bundle.Ready), so where
// readiness is acted on (OpenFaaS Standard's probe) one member that cannot
// build takes the whole bundle out of rotation (docs/bundled-stack.md,
// "Readiness"). Each member's logger is telemetry.ForMember's: its lines,
// a failed build's among them, name the member as their function and the
// bundle's process as their bundle.
func Lazy(members map[string]fnhttp.Builder, c *config.Reader, log *slog.Logger) map[string]http.Handler {
	if log == nil {
		log = slog.Default()
	}
	out := make(map[string]http.Handler, len(members))
	for name, build := range members {
		out[name] = fnhttp.NewLazy(build, c, telemetry.ForMember(log, name))
	}
	return out
}

// New returns the bundle of service for the route table: handlers must hold
// exactly the handler of every function of service in table (Lazy builds them). It fails when a
// handler is missing or extra, or when the service's routes cannot be bundled
// (see routes.CheckBundles).
func New(service string, table []routes.Route, handlers map[string]http.Handler, log *slog.Logger) (*Bundle, error) {
	var own []routes.Route
	for _, r := range table {
		if r.Service == service {
			own = append(own, r)
		}
	}
	if len(own) == 0 {
		return nil, fmt.Errorf("bundle %s: no function of the route table belongs to it", service)
	}
	if err := routes.CheckBundles(own); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", service, err)
	}
	if log == nil {
		log = slog.Default()
	}
	b := &Bundle{service: service, byName: map[string]http.Handler{}, topics: map[string]string{}, log: log}
	var errs []error
	for _, r := range own {
		h, ok := handlers[r.Function]
		if !ok || h == nil {
			errs = append(errs, fmt.Errorf("bundle %s: no handler for %s", service, r.Function))
			continue
		}
		b.byName[r.Function] = h
		switch r.Kind {
		case routes.Public:
			b.public = append(b.public, member{route: r, literals: literals(r.Path)})
		case routes.Event:
			for _, t := range r.Topics {
				b.topics[t] = r.Function
			}
		case routes.Scheduled:
			b.scheduled = r.Function
		}
	}
	for name := range handlers {
		if !contains(own, name) {
			errs = append(errs, fmt.Errorf("bundle %s: handler %s is not a function of the service", service, name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}

func contains(rs []routes.Route, fn string) bool {
	for _, r := range rs {
		if r.Function == fn {
			return true
		}
	}
	return false
}

// literals counts a path's non-wildcard segments: the more, the more specific.
func literals(path string) int {
	n := 0
	for _, s := range strings.Split(strings.Trim(path, "/"), "/") {
		if !strings.HasPrefix(s, "{") {
			n++
		}
	}
	return n
}

// Member returns the member a request is for and the request to hand it
// (rewritten for an internal call), or false when no member serves it.
func (b *Bundle) Member(r *http.Request) (string, *http.Request, bool) {
	name, req, ok := b.member(r, false)
	return name, req, ok
}

// member is Member; with named, the request it returns carries its member in
// its context (telemetry.WithFunction), and is r copied once whether or not
// it was rewritten.
func (b *Bundle) member(r *http.Request, named bool) (string, *http.Request, bool) {
	if rest, ok := strings.CutPrefix(r.URL.Path, routes.InternalPrefix); ok {
		name, sub, _ := strings.Cut(rest, "/")
		if _, ok := b.byName[name]; !ok {
			return "", nil, false
		}
		ctx := r.Context()
		if named {
			ctx = telemetry.WithFunction(ctx, name)
		}
		return name, rewrite(r, ctx, "/"+sub), true
	}
	best, found := member{literals: -1}, false
	for _, m := range b.public {
		if m.route.Matches(r.Method, r.URL.Path) && m.literals > best.literals {
			best, found = m, true
		}
	}
	name := ""
	switch {
	case found:
		name = best.route.Function
	case r.URL.Path != "/" && r.URL.Path != "":
	case r.Header.Get(routes.TopicHeader) != "":
		name = b.topics[r.Header.Get(routes.TopicHeader)]
	case r.Header.Get(routes.ScheduleHeader) != "":
		name = b.scheduled
	}
	if name == "" {
		return "", nil, false
	}
	if named {
		r = r.WithContext(telemetry.WithFunction(r.Context(), name))
	}
	return name, r, true
}

// Ready reports whether every member can serve: the members that are
// fnhttp.Readiers (Lazy's are) are asked, in name order, each building itself
// when it is not built yet, and the result joins the failures, each named
// after its member. A bundle serves every call its members would, so it is
// ready only when all of them are: a member that cannot be built would answer
// its calls 503 (docs/bundled-stack.md, "Readiness").
func (b *Bundle) Ready(ctx context.Context) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(b.byName)) {
		if rd, ok := b.byName[name].(fnhttp.Readier); ok {
			if err := rd.Ready(telemetry.WithFunction(ctx, name)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ServeHTTP hands the request to its member, or answers 404 not_found. The
// member is named, as the function that serves, to the request's metrics and
// server span (fnhttp.ServedBy: fnserve counts the request under the member,
// and names its span "<member> <METHOD>" with faas.name) and in the
// request's context (telemetry.WithFunction: every line logged with it names
// the member as its function, and the bundle as its bundle), so that on the
// faasd-CE stack a member is searched for as on the standard stack.
func (b *Bundle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, req, ok := b.member(r, true)
	if !ok {
		b.log.DebugContext(r.Context(), "no member of the bundle serves the request",
			"bundle", b.service, "method", r.Method, "path", r.URL.Path)
		fnhttp.WriteProblem(w, fault.E(fault.NotFound, fault.CodeNotFound, "no such route"))
		return
	}
	fnhttp.ServedBy(w, name)
	b.byName[name].ServeHTTP(w, req)
}

// rewrite returns a copy of r whose path is path and context ctx (same body).
func rewrite(r *http.Request, ctx context.Context, path string) *http.Request {
	r2 := r.Clone(ctx)
	r2.URL.Path = path
	r2.URL.RawPath = ""
	r2.RequestURI = path
	if r.URL.RawQuery != "" {
		r2.RequestURI += "?" + r.URL.RawQuery
	}
	return r2
}
