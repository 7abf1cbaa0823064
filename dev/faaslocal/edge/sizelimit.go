package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// sizeUnits are request-size-limiting's size_unit values (powers of 1024).
var sizeUnits = map[string]int64{"bytes": 1, "kilobytes": 1 << 10, "megabytes": 1 << 20}

// RequestSizeLimitingConfig is the config of Kong's request-size-limiting plugin.
type RequestSizeLimitingConfig struct {
	// AllowedPayloadSize is the largest body accepted, in SizeUnit (default 128).
	AllowedPayloadSize int64 `json:"allowed_payload_size"`
	// SizeUnit is bytes, kilobytes or megabytes (default megabytes).
	SizeUnit string `json:"size_unit"`
	// RequireContentLength refuses a body without Content-Length with 411.
	RequireContentLength bool `json:"require_content_length"`
}

func (c *RequestSizeLimitingConfig) setDefaults() {
	c.AllowedPayloadSize, c.SizeUnit = 128, "megabytes"
}

// Validate reports a size that is not positive and an unknown unit.
func (c *RequestSizeLimitingConfig) Validate() error {
	var errs []error
	if c.AllowedPayloadSize <= 0 {
		errs = append(errs, fmt.Errorf("allowed_payload_size %d must be positive", c.AllowedPayloadSize))
	}
	if sizeUnits[c.SizeUnit] == 0 {
		errs = append(errs, fmt.Errorf("size_unit %q (bytes, kilobytes or megabytes)", c.SizeUnit))
	}
	return errors.Join(errs...)
}

// requestSizeLimiting is Kong's request-size-limiting plugin: bodies larger
// than the limit are refused with 413 before reaching the upstream, whether
// announced by Content-Length or streamed chunked.
type requestSizeLimiting struct {
	limit                int64
	requireContentLength bool
}

func newRequestSizeLimiting(c RequestSizeLimitingConfig, _ *scope) (plugin, error) {
	return &requestSizeLimiting{limit: c.AllowedPayloadSize * sizeUnits[c.SizeUnit], requireContentLength: c.RequireContentLength}, nil
}

func (p *requestSizeLimiting) tooLarge(w http.ResponseWriter) {
	fnhttp.WriteProblem(w, fault.E(fault.TooLarge, fault.CodeBodyTooLarge, fmt.Sprintf("request body exceeds %d bytes", p.limit)))
}

func (p *requestSizeLimiting) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > p.limit {
			p.tooLarge(w)
			return
		}
		if r.ContentLength < 0 && p.requireContentLength {
			writeProblem(w, http.StatusLengthRequired, fault.CodeLengthRequired, "a valid Content-Length header is required")
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(io.LimitReader(r.Body, p.limit+1))
			if err != nil {
				writeProblem(w, http.StatusBadRequest, fault.CodeInvalidRequest, "could not read the request body")
				return
			}
			if int64(len(body)) > p.limit {
				p.tooLarge(w)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		next.ServeHTTP(w, r)
	})
}
