package edge

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// plugin is one configured instance of a Kong plugin, on one route or in
// the global chain: it wraps the rest of the chain.
type plugin interface {
	wrap(next http.Handler) http.Handler
}

// headerFilter marks a plugin that works in Kong's header_filter phase
// only: Kong runs that phase on every answer, including the ones an
// earlier plugin gives itself (a 401, a 429, a preflight), so chain applies
// such a plugin around all the others, whatever its priority.
type headerFilter interface {
	headerFilter()
}

// logPhase is a plugin with work in Kong's log phase, which runs after the
// response whichever plugin answered it (a jwt 401 included): log wraps the
// whole chain, outside every plugin's wrap.
type logPhase interface {
	log(next http.Handler) http.Handler
}

// pluginConfig is what every plugin's config struct offers: setDefaults
// sets Kong's defaults before the file's values are decoded over them (so a
// list the file sets empty stays empty), and Validate checks the decoded
// values, reporting every problem at once.
type pluginConfig interface {
	setDefaults()
	Validate() error
}

// scope is what a plugin instance is built with besides its config.
type scope struct {
	// name is the route ("<service>:<route>") or "global"; it separates the
	// rate-limiting counters of different routes.
	name string
	// consumers are the file's consumers, for the jwt plugin.
	consumers []Consumer
	// getenv resolves {vault://env/NAME} references.
	getenv func(string) string
	// now is the clock (tokens' exp and nbf, rate-limiting windows).
	now func() time.Time
	// log receives what a plugin cannot tell the client.
	log *slog.Logger
	// keyPrefix prefixes every rate-limiting counter in Redis.
	keyPrefix string
	// redis holds the edge's Redis clients.
	redis *redisPool
	// route is the route's path as a template (/api/v1/orders/{id}), the
	// http.route of its spans; "" in the global chain.
	route string
	// tracing makes the opentelemetry plugin's spans (Options.TracerProvider).
	tracing trace.TracerProvider
	// metrics are the edge's Kong metrics (the prometheus plugin).
	metrics *edgeMetrics
	// keepPublicPath is set by a plugin that reads publicPath, so that the
	// edge keeps the client's path in a routed request's context.
	keepPublicPath *bool
	// unrouted is true for the chain of requests no route matches. Kong
	// answers them 404 before its access phase, so no plugin answers them
	// in its stead (cors answers no preflight there).
	unrouted bool
}

// kind is a plugin the edge implements: Kong 3.9's PRIORITY (a higher
// priority runs first, as in Kong) and its constructor.
type kind struct {
	priority int
	build    func(raw map[string]any, sc *scope) (plugin, error)
}

// newKind is the one way a plugin is built from the file: its config C gets
// Kong's defaults, the file's config is decoded over them (unknown fields
// refused), C validates itself, and newPlugin makes the instance.
func newKind[C any, PC interface {
	*C
	pluginConfig
}](priority int, newPlugin func(C, *scope) (plugin, error)) kind {
	return kind{priority: priority, build: func(raw map[string]any, sc *scope) (plugin, error) {
		var c C
		PC(&c).setDefaults()
		if err := decodeConfig(raw, &c); err != nil {
			return nil, err
		}
		if err := PC(&c).Validate(); err != nil {
			return nil, err
		}
		return newPlugin(c, sc)
	}}
}

// kinds is the table of supported plugins. To add one, write its config
// type (fields documented, setDefaults, Validate) and its plugin type in a
// file of its own, and add its line here.
func kinds() map[string]kind {
	return map[string]kind{
		"correlation-id":        newKind(100001, newCorrelationID),
		"cors":                  newKind(2000, newCORS),
		"jwt":                   newKind(1450, newJWT),
		"request-size-limiting": newKind(951, newRequestSizeLimiting),
		"rate-limiting":         newKind(910, newRateLimiting),
		"request-transformer":   newKind(801, newRequestTransformer),
		"response-transformer":  newKind(800, newResponseTransformer),
		"opentelemetry":         newKind(14, newOpenTelemetry),
		"prometheus":            newKind(13, newPrometheus),
	}
}

// Plugins lists the plugin names the local edge implements, sorted: a Kong
// file using any other plugin is refused.
func Plugins() []string { return slices.Sorted(maps.Keys(kinds())) }

// decodeConfig fills dst (already holding Kong's defaults) from a plugin's
// config, refusing fields the plugin does not know.
func decodeConfig(cfg map[string]any, dst any) error {
	if len(cfg) == 0 {
		return nil
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(dst)
}

// chain builds the plugins' instances for one scope and returns them as
// one middleware, the highest priority outermost.
func chain(ps []Plugin, known map[string]kind, sc *scope) (func(http.Handler) http.Handler, error) {
	slices.SortFunc(ps, func(a, b Plugin) int { return cmp.Compare(known[b.Name].priority, known[a.Name].priority) })
	instances := make([]plugin, 0, len(ps))
	for _, p := range ps {
		inst, err := known[p.Name].build(p.Config, sc)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", p.Name, sc.name, err)
		}
		instances = append(instances, inst)
	}
	// Header filters first in the slice, so they wrap outermost.
	slices.SortStableFunc(instances, func(a, b plugin) int {
		_, fa := a.(headerFilter)
		_, fb := b.(headerFilter)
		switch {
		case fa && !fb:
			return -1
		case fb && !fa:
			return 1
		}
		return 0
	})
	return func(next http.Handler) http.Handler {
		for _, inst := range slices.Backward(instances) {
			next = inst.wrap(next)
		}
		for _, inst := range instances {
			if l, ok := inst.(logPhase); ok {
				next = l.log(next)
			}
		}
		return next
	}, nil
}

// PluginsFor returns the enabled plugins that apply to a route of a service,
// as Kong resolves them: the most specific enabled instance of each plugin
// name wins (route, then service, then global); a disabled one is skipped
// first, as Kong's plugins iterator does, so it hides nothing. Empty service
// and route select the global plugins.
func (d *Declarative) PluginsFor(service, route string) []Plugin {
	chosen := map[string]Plugin{}
	rank := map[string]int{}
	take := func(p Plugin, r int) {
		if !p.enabled() {
			return
		}
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
		out = append(out, p)
	}
	return out
}

// allPlugins lists every plugin instance of the file, wherever declared.
func (d *Declarative) allPlugins() []Plugin {
	out := slices.Clone(d.Plugins)
	for _, s := range d.Services {
		out = append(out, s.Plugins...)
		for _, r := range s.Routes {
			out = append(out, r.Plugins...)
		}
	}
	return out
}
