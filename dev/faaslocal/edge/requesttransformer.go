package edge

import (
	"errors"
	"fmt"
	"net/http"
)

// RequestTransformerConfig is the config of Kong's request-transformer
// plugin. The local edge implements the part the shop's Kong files use,
// remove.headers; every other operation of Kong's schema is accepted by the
// decoder (so a Kong file is read as Kong reads it) and refused by Validate
// when it is set, so no file relies on a transformation that only
// production would apply.
type RequestTransformerConfig struct {
	// HTTPMethod changes the upstream request's method (not implemented
	// locally).
	HTTPMethod string `json:"http_method"`
	// Remove removes request headers (names) before the upstream sees the
	// request; its querystring and body are not implemented locally.
	Remove requestOps `json:"remove"`
	// Rename, Replace, Add and Append are not implemented locally.
	Rename  requestOps        `json:"rename"`
	Replace requestReplaceOps `json:"replace"`
	Add     requestOps        `json:"add"`
	Append  requestOps        `json:"append"`
}

// requestOps is one operation of request-transformer: on headers, on query
// parameters and on the parameters of a form or JSON body.
type requestOps struct {
	// Headers are header names (remove) or "Name:value" entries.
	Headers []string `json:"headers"`
	// Querystring are query parameters (not implemented locally).
	Querystring []string `json:"querystring"`
	// Body are body parameters (not implemented locally).
	Body []string `json:"body"`
}

// requestReplaceOps is request-transformer's replace, which may also replace
// the upstream path.
type requestReplaceOps struct {
	requestOps
	// URI replaces the upstream request's path (not implemented locally).
	URI string `json:"uri"`
}

func (c *RequestTransformerConfig) setDefaults() {}

// Validate checks every remove.headers entry (a header name) and refuses
// every operation the local edge does not implement.
func (c *RequestTransformerConfig) Validate() error {
	var errs []error
	for _, h := range c.Remove.Headers {
		if !headerName.MatchString(h) {
			errs = append(errs, fmt.Errorf("remove.headers %q is not a header name", h))
		}
	}
	const only = "is not implemented by the local edge (only remove.headers is)"
	if c.HTTPMethod != "" {
		errs = append(errs, fmt.Errorf("http_method %s", only))
	}
	if len(c.Remove.Querystring) > 0 {
		errs = append(errs, fmt.Errorf("remove.querystring %s", only))
	}
	if len(c.Remove.Body) > 0 {
		errs = append(errs, fmt.Errorf("remove.body %s", only))
	}
	if c.Replace.URI != "" {
		errs = append(errs, fmt.Errorf("replace.uri %s", only))
	}
	for _, op := range []struct {
		name string
		ops  requestOps
	}{{"rename", c.Rename}, {"replace", c.Replace.requestOps}, {"add", c.Add}, {"append", c.Append}} {
		if len(op.ops.Headers)+len(op.ops.Querystring)+len(op.ops.Body) > 0 {
			errs = append(errs, fmt.Errorf("%s %s", op.name, only))
		}
	}
	return errors.Join(errs...)
}

// requestTransformer is Kong's request-transformer plugin (remove.headers):
// in Kong's access phase, at its priority, it removes the headers from the
// request, so the upstream (and every plugin after it) never sees the
// client's values: a call id it would log (X-Call-Id), a credential or a
// signature only internal callers send.
type requestTransformer struct {
	remove []string // canonical names of the headers removed
}

func newRequestTransformer(c RequestTransformerConfig, _ *scope) (plugin, error) {
	p := &requestTransformer{}
	for _, name := range c.Remove.Headers {
		p.remove = append(p.remove, http.CanonicalHeaderKey(name))
	}
	return p, nil
}

func (p *requestTransformer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, name := range p.remove {
			delete(r.Header, name)
		}
		next.ServeHTTP(w, r)
	})
}
