package edge

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// cors is Kong's cors plugin for exact origins (or "*"): a preflight
// (OPTIONS with Access-Control-Request-Method) is answered by the edge with
// 200 unless preflight_continue; every other response gets
// Access-Control-Allow-Origin only for an allow-listed Origin, and Vary:
// Origin whenever the allow-list is not "*". Errors from later plugins
// (401, 413, 429) carry the same headers, as the plugin's header filter runs
// for them in Kong.
func cors(cfg map[string]any, _ *Options) (Middleware, error) {
	c := struct {
		Origins           []string `json:"origins"`
		Headers           []string `json:"headers"`
		ExposedHeaders    []string `json:"exposed_headers"`
		Methods           []string `json:"methods"`
		MaxAge            *int     `json:"max_age"`
		Credentials       bool     `json:"credentials"`
		PrivateNetwork    bool     `json:"private_network"`
		PreflightContinue bool     `json:"preflight_continue"`
		AllowOriginAbsent bool     `json:"allow_origin_absent"`
	}{Methods: []string{"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"}, AllowOriginAbsent: true}
	if err := decodeConfig(cfg, &c); err != nil {
		return nil, fmt.Errorf("cors: %w", err)
	}
	any := len(c.Origins) == 0 || slices.Contains(c.Origins, "*")
	for _, o := range c.Origins {
		if o != "*" && strings.ContainsAny(o, `^$()[]{}|\+?`) {
			return nil, fmt.Errorf("cors: origin %q: regex origins are not supported by the local edge", o)
		}
	}
	allowed := func(origin string) string {
		switch {
		case any && c.Credentials && origin != "":
			return origin
		case any:
			return "*"
		case origin != "" && slices.Contains(c.Origins, origin):
			return origin
		}
		return ""
	}
	methods := strings.Join(c.Methods, ",")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			set := func(h http.Header) {
				if !any {
					h.Add("Vary", "Origin")
				}
				if a := allowed(origin); a != "" {
					h.Set("Access-Control-Allow-Origin", a)
					if c.Credentials {
						h.Set("Access-Control-Allow-Credentials", "true")
					}
				} else {
					h.Del("Access-Control-Allow-Origin")
					h.Del("Access-Control-Allow-Credentials")
				}
			}
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" && !c.PreflightContinue {
				h := w.Header()
				set(h)
				if allowed(origin) != "" {
					if len(c.Headers) > 0 {
						h.Set("Access-Control-Allow-Headers", strings.Join(c.Headers, ","))
					} else if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
						h.Set("Access-Control-Allow-Headers", req)
					}
					h.Set("Access-Control-Allow-Methods", methods)
					if c.MaxAge != nil {
						h.Set("Access-Control-Max-Age", strconv.Itoa(*c.MaxAge))
					}
					if c.PrivateNetwork && r.Header.Get("Access-Control-Request-Private-Network") == "true" {
						h.Set("Access-Control-Allow-Private-Network", "true")
					}
				}
				w.WriteHeader(http.StatusOK)
				return
			}
			w = &responseHook{ResponseWriter: w, before: func(h http.Header, _ int) {
				set(h)
				if len(c.ExposedHeaders) > 0 && allowed(origin) != "" {
					h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposedHeaders, ","))
				}
			}}
			next.ServeHTTP(w, r)
		})
	}, nil
}
