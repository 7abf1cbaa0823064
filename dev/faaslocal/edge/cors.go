package edge

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// CORSConfig is the config of Kong's cors plugin. Origins are exact
// origins or "*"; Kong's regex origins are refused by the local edge.
type CORSConfig struct {
	// Origins may call the API from a browser; empty or "*" allows any.
	Origins []string `json:"origins"`
	// Headers answer a preflight's Access-Control-Allow-Headers; empty
	// echoes the preflight's Access-Control-Request-Headers.
	Headers []string `json:"headers"`
	// ExposedHeaders is Access-Control-Expose-Headers of actual responses.
	ExposedHeaders []string `json:"exposed_headers"`
	// Methods is a preflight's Access-Control-Allow-Methods (default: every method).
	Methods []string `json:"methods"`
	// MaxAge is a preflight's Access-Control-Max-Age in seconds, when set.
	MaxAge *int `json:"max_age"`
	// Credentials sets Access-Control-Allow-Credentials: true.
	Credentials bool `json:"credentials"`
	// PrivateNetwork answers Access-Control-Request-Private-Network preflights.
	PrivateNetwork bool `json:"private_network"`
	// PreflightContinue sends preflights to the upstream instead of
	// answering them at the edge.
	PreflightContinue bool `json:"preflight_continue"`
	// AllowOriginAbsent is Kong's flag for requests without Origin
	// (default true); accepted, with no effect here.
	AllowOriginAbsent bool `json:"allow_origin_absent"`
}

func (c *CORSConfig) setDefaults() {
	c.Methods = []string{"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
	c.AllowOriginAbsent = true
}

// Validate reports regex origins and a negative max_age.
func (c *CORSConfig) Validate() error {
	var errs []error
	for _, o := range c.Origins {
		if o != "*" && strings.ContainsAny(o, `^$()[]{}|\+?`) {
			errs = append(errs, fmt.Errorf("origin %q: regex origins are not supported by the local edge", o))
		}
	}
	if c.MaxAge != nil && *c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age %d must not be negative", *c.MaxAge))
	}
	return errors.Join(errs...)
}

// cors is Kong's cors plugin: a routed preflight (OPTIONS with Origin and
// Access-Control-Request-Method) is answered by the edge with 200 unless
// preflight_continue (one no route matches gets the 404, as in Kong, whose
// router answers it before any plugin runs); every answer, a preflight's
// included, gets Access-Control-Allow-Origin only for an allowed Origin,
// and Vary: Origin whenever the allow-list is not "*". Errors from later plugins (401, 413, 429) carry the same
// headers, as the plugin's header filter runs for them in Kong.
type cors struct {
	cfg       CORSConfig
	unrouted  bool // the unrouted chain's: preflights get the 404 (scope.unrouted)
	anyOrigin bool
	methods   string
	exposed   string                             // Access-Control-Expose-Headers, "" when none
	answer    func(h http.Header, origin string) // an actual response's headers, made once
}

func newCORS(c CORSConfig, sc *scope) (plugin, error) {
	p := &cors{cfg: c, unrouted: sc.unrouted, anyOrigin: len(c.Origins) == 0 || slices.Contains(c.Origins, "*"),
		methods: strings.Join(c.Methods, ","), exposed: strings.Join(c.ExposedHeaders, ",")}
	p.answer = func(h http.Header, origin string) {
		p.setOrigin(h, origin)
		if p.exposed != "" && p.allowed(origin) != "" {
			h.Set("Access-Control-Expose-Headers", p.exposed)
		}
	}
	return p, nil
}

// allowed is the Access-Control-Allow-Origin for origin, "" when refused.
func (p *cors) allowed(origin string) string {
	switch {
	case p.anyOrigin && p.cfg.Credentials && origin != "":
		return origin
	case p.anyOrigin:
		return "*"
	case origin != "" && slices.Contains(p.cfg.Origins, origin):
		return origin
	}
	return ""
}

// setOrigin sets (or removes) the origin headers every response gets.
func (p *cors) setOrigin(h http.Header, origin string) {
	if !p.anyOrigin {
		h.Add("Vary", "Origin")
	}
	if a := p.allowed(origin); a != "" {
		h.Set("Access-Control-Allow-Origin", a)
		if p.cfg.Credentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		return
	}
	h.Del("Access-Control-Allow-Origin")
	h.Del("Access-Control-Allow-Credentials")
}

func (p *cors) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		// A preflight, as Kong tells one: OPTIONS with an Origin and
		// Access-Control-Request-Method; anything else goes on (a jwt
		// route answers it 401).
		if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" && !p.cfg.PreflightContinue && !p.unrouted {
			p.preflight(w, r, origin)
			return
		}
		w = &responseHook{ResponseWriter: w, before: p.answer, arg: origin}
		next.ServeHTTP(w, r)
	})
}

// preflight answers a preflight at the edge, as Kong 3.9's cors handler
// (access phase) does: Access-Control-Allow-Origin only for an allowed
// origin, but Allow-Methods, Allow-Headers, Max-Age and Allow-Private-Network
// whatever the origin. They grant nothing without the origin header (a
// browser checks it first), and answering as Kong does keeps what a test
// sees here what production answers; the allow-list is no secret.
func (p *cors) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	h := w.Header()
	p.setOrigin(h, origin)
	if len(p.cfg.Headers) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(p.cfg.Headers, ","))
	} else if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Allow-Methods", p.methods)
	if p.cfg.MaxAge != nil {
		h.Set("Access-Control-Max-Age", strconv.Itoa(*p.cfg.MaxAge))
	}
	if p.cfg.PrivateNetwork && r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	w.WriteHeader(http.StatusOK)
}
