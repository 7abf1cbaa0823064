package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Middleware is one plugin instance wrapped around the rest of the chain.
type Middleware func(next http.Handler) http.Handler

// pluginKind is a plugin the edge implements. Priority is Kong's PRIORITY
// for the plugin: a higher priority runs first, as in Kong.
type pluginKind struct {
	priority int
	build    func(cfg map[string]any, env *Options) (Middleware, error)
}

// kinds is the table of supported plugins, with Kong 3.9's priorities. To
// add one, add its entry here and a builder that decodes its config with
// decodeConfig.
func kinds() map[string]pluginKind {
	return map[string]pluginKind{
		"correlation-id":        {priority: 100001, build: correlationID},
		"cors":                  {priority: 2000, build: cors},
		"jwt":                   {priority: 1450, build: jwtAuth},
		"request-size-limiting": {priority: 951, build: requestSizeLimiting},
		"rate-limiting":         {priority: 910, build: rateLimiting},
		"opentelemetry":         {priority: 14, build: openTelemetry},
		"prometheus":            {priority: 13, build: prometheus},
	}
}

// Plugins lists the plugin names the local edge implements, sorted: a Kong
// file using any other plugin is refused.
func Plugins() []string { return pluginNames(kinds()) }

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

// writeProblem answers with the project's problem body.
func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	p := fnhttp.Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: detail}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// correlationID is Kong's correlation-id plugin: the request keeps its
// header_name value or gets a generated one, the upstream sees it and, with
// echo_downstream, the response carries it.
func correlationID(cfg map[string]any, _ *Options) (Middleware, error) {
	c := struct {
		HeaderName     string `json:"header_name"`
		Generator      string `json:"generator"`
		EchoDownstream bool   `json:"echo_downstream"`
	}{HeaderName: "Kong-Request-ID", Generator: "uuid#counter"}
	if err := decodeConfig(cfg, &c); err != nil {
		return nil, fmt.Errorf("correlation-id: %w", err)
	}
	var counter atomic.Uint64
	prefix := uuid.NewString()
	var gen func() string
	switch c.Generator {
	case "uuid":
		gen = uuid.NewString
	case "uuid#counter":
		gen = func() string { return prefix + "#" + strconv.FormatUint(counter.Add(1), 10) }
	case "tracker":
		gen = func() string { return uuid.NewString() + "-" + strconv.FormatUint(counter.Add(1), 10) }
	default:
		return nil, fmt.Errorf("correlation-id: generator %q", c.Generator)
	}
	header := http.CanonicalHeaderKey(c.HeaderName)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get(header)
			if id == "" {
				id = gen()
				r.Header.Set(header, id)
			}
			if c.EchoDownstream {
				w = &headerSetter{ResponseWriter: w, key: header, value: id}
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// headerSetter sets one response header when the response starts, after
// the upstream's headers were copied (so it is never duplicated).
type headerSetter struct {
	http.ResponseWriter
	key, value string
	wrote      bool
}

func (h *headerSetter) WriteHeader(status int) {
	if !h.wrote {
		h.wrote = true
		h.Header().Set(h.key, h.value)
	}
	h.ResponseWriter.WriteHeader(status)
}

func (h *headerSetter) Write(b []byte) (int, error) {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

func (h *headerSetter) Flush() {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (h *headerSetter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// requestSizeLimiting is Kong's request-size-limiting plugin: bodies larger
// than allowed_payload_size (in size_unit, powers of 1024) are refused with
// 413 before reaching the upstream, whether announced by Content-Length or
// streamed chunked.
func requestSizeLimiting(cfg map[string]any, _ *Options) (Middleware, error) {
	c := struct {
		AllowedPayloadSize   int64  `json:"allowed_payload_size"`
		SizeUnit             string `json:"size_unit"`
		RequireContentLength bool   `json:"require_content_length"`
	}{AllowedPayloadSize: 128, SizeUnit: "megabytes"}
	if err := decodeConfig(cfg, &c); err != nil {
		return nil, fmt.Errorf("request-size-limiting: %w", err)
	}
	unit := map[string]int64{"bytes": 1, "kilobytes": 1 << 10, "megabytes": 1 << 20}[c.SizeUnit]
	if unit == 0 || c.AllowedPayloadSize <= 0 {
		return nil, fmt.Errorf("request-size-limiting: bad size %d %q", c.AllowedPayloadSize, c.SizeUnit)
	}
	limit := c.AllowedPayloadSize * unit
	tooLarge := func(w http.ResponseWriter) {
		fnhttp.WriteProblem(w, fault.E(fault.TooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", limit)))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > limit {
				tooLarge(w)
				return
			}
			if r.ContentLength < 0 && c.RequireContentLength {
				writeProblem(w, http.StatusLengthRequired, "length_required", "a valid Content-Length header is required")
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
				if err != nil {
					writeProblem(w, http.StatusBadRequest, "invalid_request", "could not read the request body")
					return
				}
				if int64(len(body)) > limit {
					tooLarge(w)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = int64(len(body))
				r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}
