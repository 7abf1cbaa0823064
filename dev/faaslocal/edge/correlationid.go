package edge

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/google/uuid"
)

// CorrelationIDConfig is the config of Kong's correlation-id plugin.
type CorrelationIDConfig struct {
	// HeaderName is the request (and, with EchoDownstream, response) header
	// carrying the id (default Kong-Request-ID).
	HeaderName string `json:"header_name"`
	// Generator makes the id of a request that has none: uuid,
	// uuid#counter (default: one uuid per edge and a counter) or tracker.
	Generator string `json:"generator"`
	// EchoDownstream adds the id to the response.
	EchoDownstream bool `json:"echo_downstream"`
}

func (c *CorrelationIDConfig) setDefaults() {
	c.HeaderName, c.Generator = "Kong-Request-ID", "uuid#counter"
}

// Validate reports a missing header name and an unknown generator.
func (c *CorrelationIDConfig) Validate() error {
	var errs []error
	if c.HeaderName == "" {
		errs = append(errs, errors.New("header_name is required"))
	}
	switch c.Generator {
	case "uuid", "uuid#counter", "tracker":
	default:
		errs = append(errs, fmt.Errorf("generator %q (uuid, uuid#counter or tracker)", c.Generator))
	}
	return errors.Join(errs...)
}

// correlationID is Kong's correlation-id plugin: the request keeps its
// header's value or gets a generated one, the upstream sees it and, with
// echo_downstream, the response carries it.
type correlationID struct {
	header string
	echo   bool
	next   func() string
	setID  func(h http.Header, id string) // the echo, made once
}

func newCorrelationID(c CorrelationIDConfig, _ *scope) (plugin, error) {
	p := &correlationID{header: http.CanonicalHeaderKey(c.HeaderName), echo: c.EchoDownstream}
	p.setID = func(h http.Header, id string) { h.Set(p.header, id) }
	var counter atomic.Uint64
	prefix := uuid.NewString()
	switch c.Generator {
	case "uuid":
		p.next = uuid.NewString
	case "uuid#counter":
		p.next = func() string { return prefix + "#" + strconv.FormatUint(counter.Add(1), 10) }
	case "tracker":
		p.next = func() string { return uuid.NewString() + "-" + strconv.FormatUint(counter.Add(1), 10) }
	}
	return p, nil
}

func (p *correlationID) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(p.header)
		if id == "" {
			id = p.next()
			r.Header.Set(p.header, id)
		}
		if p.echo {
			w = &responseHook{ResponseWriter: w, before: p.setID, arg: id}
		}
		next.ServeHTTP(w, r)
	})
}
