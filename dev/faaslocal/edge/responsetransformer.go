package edge

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// ResponseTransformerConfig is the config of Kong's response-transformer
// plugin. The local edge implements the part the shop's Kong files use,
// add.headers; every other operation of Kong's schema is accepted by the
// decoder (so a Kong file is read as Kong reads it) and refused by Validate
// when it is not empty, so no file relies on a transformation that only
// production would apply.
type ResponseTransformerConfig struct {
	// Add adds headers ("Name:value") that the answer does not already have.
	Add transformOps `json:"add"`
	// Append, Remove, Rename and Replace are not implemented locally.
	Append  transformOps `json:"append"`
	Remove  transformOps `json:"remove"`
	Rename  transformOps `json:"rename"`
	Replace transformOps `json:"replace"`
}

// transformOps is one operation of response-transformer: on headers and on
// the keys of a JSON body.
type transformOps struct {
	// Headers are "Name:value" entries (names only for remove).
	Headers []string `json:"headers"`
	// JSON are "key:value" entries of a JSON body (not implemented locally).
	JSON []string `json:"json"`
	// JSONTypes are the JSON values' types (not implemented locally).
	JSONTypes []string `json:"json_types"`
}

func (c *ResponseTransformerConfig) setDefaults() {}

// Validate checks every add.headers entry (a valid header name, a colon, a
// value without control characters) and refuses every operation the local
// edge does not implement.
func (c *ResponseTransformerConfig) Validate() error {
	var errs []error
	for _, h := range c.Add.Headers {
		if _, _, err := splitHeader(h); err != nil {
			errs = append(errs, fmt.Errorf("add.headers: %w", err))
		}
	}
	if len(c.Add.JSON)+len(c.Add.JSONTypes) > 0 {
		errs = append(errs, errors.New("add.json is not implemented by the local edge"))
	}
	for name, op := range map[string]transformOps{"append": c.Append, "remove": c.Remove, "rename": c.Rename, "replace": c.Replace} {
		if len(op.Headers)+len(op.JSON)+len(op.JSONTypes) > 0 {
			errs = append(errs, fmt.Errorf("%s is not implemented by the local edge (only add.headers is)", name))
		}
	}
	return errors.Join(errs...)
}

// headerName is an RFC 9110 field name (a token).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// splitHeader parses a "Name:value" entry as Kong does (at the first colon).
func splitHeader(entry string) (name, value string, err error) {
	name, value, ok := strings.Cut(entry, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	switch {
	case !ok || value == "":
		return "", "", fmt.Errorf("%q is not Name:value", entry)
	case !headerName.MatchString(name):
		return "", "", fmt.Errorf("%q: bad header name", entry)
	case strings.ContainsFunc(value, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }):
		return "", "", fmt.Errorf("%q: bad header value", entry)
	}
	return name, value, nil
}

// responseTransformer is Kong's response-transformer plugin (add.headers):
// its work is in Kong's header_filter phase, which runs on every answer of
// its scope, the ones other plugins produce (a jwt 401, a rate-limiting 429,
// a cors preflight, the 404 of no route) as well as the upstream's. So it
// is applied around the whole chain (outermost), whatever its priority.
type responseTransformer struct {
	add http.Header
}

func newResponseTransformer(c ResponseTransformerConfig, _ *scope) (plugin, error) {
	p := &responseTransformer{add: http.Header{}}
	for _, h := range c.Add.Headers {
		name, value, _ := splitHeader(h) // checked by Validate
		p.add.Add(name, value)
	}
	return p, nil
}

func (p *responseTransformer) headerFilter() {}

func (p *responseTransformer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&headerAdder{ResponseWriter: w, add: p.add}, r)
	})
}

// headerAdder adds headers the answer lacks just before it is sent.
type headerAdder struct {
	http.ResponseWriter
	add     http.Header
	written bool
}

func (a *headerAdder) WriteHeader(status int) {
	if !a.written {
		a.written = true
		h := a.ResponseWriter.Header()
		for name, values := range a.add {
			if _, ok := h[name]; !ok {
				h[name] = values
			}
		}
	}
	a.ResponseWriter.WriteHeader(status)
}

func (a *headerAdder) Write(b []byte) (int, error) {
	if !a.written {
		a.WriteHeader(http.StatusOK)
	}
	return a.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes of
// streamed answers).
func (a *headerAdder) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// Flush sends what was written so far, headers first.
func (a *headerAdder) Flush() {
	if !a.written {
		a.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(a.ResponseWriter).Flush()
}
