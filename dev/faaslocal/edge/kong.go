// Package edge is the local stand-in for Kong: it reads the same DB-less
// declarative file (gateway/kong.yml), matches requests to routes with Kong's
// priorities (regex paths before prefix paths, longer prefixes first), runs
// the configured plugins and proxies to the service's upstream.
//
// Only what the project's kong.yml uses is supported; anything else in the
// file (route hosts or headers, unknown plugins or plugin fields, protocols
// without http and https) is refused at load time, so the local edge never
// silently routes differently from Kong.
//
// This file is the loader. Routing is in route.go; each plugin is a type in
// a file of its own with its config type (one documented field per Kong
// field, setDefaults with Kong's defaults, Validate), and kinds in plugin.go
// is the table of supported plugins with Kong's priorities.
package edge

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Declarative is the subset of Kong's DB-less format (3.0) the edge reads.
type Declarative struct {
	// FormatVersion must be "3.0".
	FormatVersion string `yaml:"_format_version"`
	// Transform is Kong's _transform flag; accepted and ignored.
	Transform *bool `yaml:"_transform"`
	// Services are the upstreams with their routes and plugins.
	Services []Service `yaml:"services"`
	// Plugins are global plugins or, with Service/Route set, scoped ones.
	Plugins []Plugin `yaml:"plugins"`
	// Consumers are Kong consumers with their jwt credentials.
	Consumers []Consumer `yaml:"consumers"`
}

// Consumer is a Kong consumer: who a verified credential belongs to.
type Consumer struct {
	Username string   `yaml:"username"`
	CustomID string   `yaml:"custom_id"`
	Tags     []string `yaml:"tags"`
	// JWTSecrets are the consumer's jwt credentials; Key is matched against
	// the token's key claim (iss by default).
	JWTSecrets []JWTSecret `yaml:"jwt_secrets"`
}

// JWTSecret is a jwt plugin credential. Secret may be a vault reference
// ({vault://env/NAME}), resolved by the edge from its environment.
type JWTSecret struct {
	Key          string   `yaml:"key"`
	Algorithm    string   `yaml:"algorithm"`
	Secret       string   `yaml:"secret"`
	RSAPublicKey string   `yaml:"rsa_public_key"`
	Tags         []string `yaml:"tags"`
}

// Service is a Kong service: one upstream URL and the routes to it.
type Service struct {
	Name           string   `yaml:"name"`
	URL            string   `yaml:"url"`
	Retries        *int     `yaml:"retries"`
	ConnectTimeout *int     `yaml:"connect_timeout"`
	ReadTimeout    *int     `yaml:"read_timeout"`
	WriteTimeout   *int     `yaml:"write_timeout"`
	Tags           []string `yaml:"tags"`
	Routes         []Route  `yaml:"routes"`
	Plugins        []Plugin `yaml:"plugins"`
}

// Route is a Kong route: paths (plain = prefix, "~" = regex), methods and
// whether the matched part is stripped before proxying.
type Route struct {
	Name          string   `yaml:"name"`
	Paths         []string `yaml:"paths"`
	Methods       []string `yaml:"methods"`
	Protocols     []string `yaml:"protocols"`
	StripPath     *bool    `yaml:"strip_path"`
	PreserveHost  bool     `yaml:"preserve_host"`
	RegexPriority int      `yaml:"regex_priority"`
	PathHandling  string   `yaml:"path_handling"`
	Tags          []string `yaml:"tags"`
	Plugins       []Plugin `yaml:"plugins"`
}

// Plugin is a plugin instance. Service and Route scope a top-level plugin.
type Plugin struct {
	Name      string         `yaml:"name"`
	Enabled   *bool          `yaml:"enabled"`
	Service   string         `yaml:"service"`
	Route     string         `yaml:"route"`
	Consumer  string         `yaml:"consumer"`
	Protocols []string       `yaml:"protocols"`
	Tags      []string       `yaml:"tags"`
	Config    map[string]any `yaml:"config"`
}

func (p Plugin) enabled() bool { return p.Enabled == nil || *p.Enabled }

// Load reads and validates a declarative file.
func Load(path string) (*Declarative, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kong config: %w", err)
	}
	d, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("kong config %s: %w", path, err)
	}
	return d, nil
}

// Parse decodes and validates a declarative document; unknown fields are errors.
func Parse(b []byte) (*Declarative, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var d Declarative
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	return &d, d.validate()
}

func (d *Declarative) validate() error {
	var errs []error
	if d.FormatVersion != "3.0" {
		errs = append(errs, fmt.Errorf("_format_version must be \"3.0\", got %q", d.FormatVersion))
	}
	services, routes := map[string]bool{}, map[string]bool{}
	for _, s := range d.Services {
		if s.Name == "" || services[s.Name] {
			errs = append(errs, fmt.Errorf("service name %q is empty or repeated", s.Name))
		}
		services[s.Name] = true
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("service %s: url %q must be http(s)://host[:port]/path", s.Name, s.URL))
		}
		for _, r := range s.Routes {
			if r.Name != "" {
				if routes[r.Name] {
					errs = append(errs, fmt.Errorf("route name %q repeated", r.Name))
				}
				routes[r.Name] = true
			}
			if len(r.Paths) == 0 {
				errs = append(errs, fmt.Errorf("service %s route %q: paths are required (hosts and headers are not supported locally)", s.Name, r.Name))
			}
			for _, p := range r.Paths {
				if re, ok := strings.CutPrefix(p, "~"); ok {
					if _, err := regexp.Compile(re); err != nil {
						errs = append(errs, fmt.Errorf("route %q: regex path %q: %w", r.Name, p, err))
					}
				} else if !strings.HasPrefix(p, "/") {
					errs = append(errs, fmt.Errorf("route %q: path %q must start with / or ~", r.Name, p))
				}
			}
			if r.PathHandling != "" && r.PathHandling != "v0" && r.PathHandling != "v1" {
				errs = append(errs, fmt.Errorf("route %q: path_handling %q", r.Name, r.PathHandling))
			}
			errs = append(errs, checkProtocols(fmt.Sprintf("route %q", r.Name), r.Protocols))
			for _, p := range r.Plugins {
				errs = append(errs, checkProtocols(fmt.Sprintf("route %q plugin %s", r.Name, p.Name), p.Protocols))
			}
		}
		for _, p := range s.Plugins {
			errs = append(errs, checkProtocols(fmt.Sprintf("service %s plugin %s", s.Name, p.Name), p.Protocols))
		}
	}
	keys, usernames, customIDs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, c := range d.Consumers {
		if c.Username == "" && c.CustomID == "" {
			errs = append(errs, errors.New("consumer needs a username or custom_id"))
		}
		// Unique each among its kind, as Kong's schema has them: a
		// consumer's rate-limit count is keyed by them (consumerKey).
		if c.Username != "" && usernames[c.Username] {
			errs = append(errs, fmt.Errorf("consumer username %q is repeated", c.Username))
		}
		if c.CustomID != "" && customIDs[c.CustomID] {
			errs = append(errs, fmt.Errorf("consumer custom_id %q is repeated", c.CustomID))
		}
		usernames[c.Username], customIDs[c.CustomID] = true, true
		for _, j := range c.JWTSecrets {
			if j.Key == "" || keys[j.Key] {
				errs = append(errs, fmt.Errorf("consumer %s: jwt_secrets key %q is empty or repeated", c.Username, j.Key))
			}
			keys[j.Key] = true
		}
	}
	for _, p := range d.Plugins {
		if p.Service != "" && !services[p.Service] {
			errs = append(errs, fmt.Errorf("plugin %s: unknown service %q", p.Name, p.Service))
		}
		if p.Route != "" && !routes[p.Route] {
			errs = append(errs, fmt.Errorf("plugin %s: unknown route %q", p.Name, p.Route))
		}
		errs = append(errs, checkProtocols("plugin "+p.Name, p.Protocols))
	}
	return errors.Join(errs...)
}

// checkProtocols refuses a route's or plugin's protocols that leave out http
// or https. Kong matches a route only for its protocols and runs a plugin
// only for its own (a jwt with [grpc, grpcs] never runs on an HTTP request,
// leaving its route open), while the local edge serves HTTP and applies every
// plugin: it can honour only a list that holds both (empty means Kong's
// default, which does).
func checkProtocols(where string, protocols []string) error {
	if len(protocols) == 0 || slices.Contains(protocols, "http") && slices.Contains(protocols, "https") {
		return nil
	}
	return fmt.Errorf("%s: protocols %v must include http and https (Kong would not apply it to every request the local edge does)", where, protocols)
}
