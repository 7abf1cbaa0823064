// Package fnhttp is the HTTP edge of every function: strict JSON decoding,
// encoding, and the one table that turns a fault.Kind into a status code and an
// RFC 9457 problem body.
package fnhttp

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
)

// MaxBody is the default request body limit, the edge's limit (64 KiB).
const MaxBody = 64 << 10

// statusOf is THE kind→status table.
var statusOf = map[fault.Kind]int{
	fault.Internal:             http.StatusInternalServerError,
	fault.Malformed:            http.StatusBadRequest,
	fault.Invalid:              http.StatusUnprocessableEntity,
	fault.Unauthenticated:      http.StatusUnauthorized,
	fault.Forbidden:            http.StatusForbidden,
	fault.NotFound:             http.StatusNotFound,
	fault.Conflict:             http.StatusConflict,
	fault.PaymentRequired:      http.StatusPaymentRequired,
	fault.TooLarge:             http.StatusRequestEntityTooLarge,
	fault.RateLimited:          http.StatusTooManyRequests,
	fault.Unavailable:          http.StatusServiceUnavailable,
	fault.Timeout:              http.StatusGatewayTimeout,
	fault.PreconditionFailed:   http.StatusPreconditionFailed,
	fault.MethodNotAllowed:     http.StatusMethodNotAllowed,
	fault.PreconditionRequired: http.StatusPreconditionRequired,
}

// Status is the HTTP status for err's kind; a kind missing from the table is
// a defect and answers 500.
func Status(err error) int {
	if s, ok := statusOf[fault.KindOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// kindOf is THE way back, status→kind: the inverse of statusOf, plus the
// statuses no kind is answered with but the gateway, the watchdog or a proxy
// between two functions may answer (408, 411, 415, 502).
var kindOf = map[int]fault.Kind{
	http.StatusInternalServerError:   fault.Internal,
	http.StatusBadRequest:            fault.Malformed,
	http.StatusLengthRequired:        fault.Malformed,
	http.StatusUnsupportedMediaType:  fault.Malformed,
	http.StatusUnprocessableEntity:   fault.Invalid,
	http.StatusUnauthorized:          fault.Unauthenticated,
	http.StatusForbidden:             fault.Forbidden,
	http.StatusNotFound:              fault.NotFound,
	http.StatusConflict:              fault.Conflict,
	http.StatusPaymentRequired:       fault.PaymentRequired,
	http.StatusRequestEntityTooLarge: fault.TooLarge,
	http.StatusTooManyRequests:       fault.RateLimited,
	http.StatusServiceUnavailable:    fault.Unavailable,
	http.StatusBadGateway:            fault.Unavailable,
	http.StatusGatewayTimeout:        fault.Timeout,
	http.StatusRequestTimeout:        fault.Timeout,
	http.StatusPreconditionFailed:    fault.PreconditionFailed,
	http.StatusMethodNotAllowed:      fault.MethodNotAllowed,
	http.StatusPreconditionRequired:  fault.PreconditionRequired,
}

// ErrorFrom turns a failed answer of another function — its status (not
// 2xx) and its body — back into the error it stands for, so that a caller
// decides on kinds and codes (and fault.Retryable) exactly as if the
// function had been called in process:
//   - the kind is the status's (kindOf; Internal for a status it does not know);
//   - the code and message are the problem body's code and detail;
//   - an answer without a problem body came from the gateway, the watchdog or
//     a proxy, not from a function: its code is the kind's name and its
//     message the status text, and its 404 means the function itself is
//     missing (faasd deletes and recreates a function to update it), so it is
//     Unavailable, not NotFound.
//
// The cause (for logs only) names the status and the code, or the start of a
// body that is not a problem.
func ErrorFrom(status int, body []byte) *fault.Error {
	kind, ok := kindOf[status]
	if !ok {
		kind = fault.Internal
	}
	var p Problem
	if json.Unmarshal(body, &p) != nil || p.Code == "" {
		if kind == fault.NotFound {
			kind = fault.Unavailable
		}
		cause := fmt.Errorf("answered %d without a problem body: %.200q", status, body)
		return fault.Wrap(cause, kind, fault.Code(kind.String()), cmp.Or(http.StatusText(status), "unexpected answer"))
	}
	cause := fmt.Errorf("answered %d %s", status, p.Code)
	return fault.Wrap(cause, kind, fault.Code(p.Code), cmp.Or(p.Detail, http.StatusText(status), "unexpected answer"))
}

// Problem is an RFC 9457 problem details body with the project's stable code.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Code     string `json:"code"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Members are the problem's extension members (fault.Error.Members),
	// written after the standard ones; a member named like a standard one is
	// not written.
	Members map[string]any `json:"-"`
}

// MarshalJSON writes the standard members, then the extension members.
func (p Problem) MarshalJSON() ([]byte, error) {
	type standard Problem
	body, err := json.Marshal(standard(p))
	if err != nil || len(p.Members) == 0 {
		return body, err
	}
	extra := maps.Clone(p.Members)
	for _, name := range []string{"type", "title", "status", "code", "detail", "instance"} {
		delete(extra, name)
	}
	more, err := json.Marshal(extra)
	if err != nil || len(extra) == 0 {
		return body, err
	}
	return append(append(body[:len(body)-1], ','), more[1:]...), nil
}

// ProblemFor builds the problem body for err. Internal errors get a generic
// detail: the cause is never echoed to the client.
func ProblemFor(err error) Problem {
	status := Status(err)
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: string(fault.CodeOf(err))}
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Kind != fault.Internal {
		p.Detail = fe.Message
		p.Members = fe.Members
	} else {
		p.Detail = "internal error"
	}
	return p
}

// WriteProblem writes err as application/problem+json.
func WriteProblem(w http.ResponseWriter, err error) { ProblemFor(err).Write(w) }

// Write answers p as application/problem+json, never cached.
func (p Problem) Write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// JSON writes v with status.
func JSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fault.Internalf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// Decode reads at most limit bytes of JSON into dst, rejecting unknown fields
// (a key that is not its field's name exactly, case included), a key repeated
// in one object (keys.go), trailing data, wrong types and oversized bodies
// with 4xx faults.
//
// The body must declare its type, application/json or a +json type: a
// missing Content-Type is refused as one that is not JSON is, 400
// unsupported_media_type, before the body is read, as api/openapi.yaml says
// of every operation that takes a body. A client that forgets the header
// learns it at once instead of relying on a lenient default, and since every
// body goes through here no handler has a check of its own to forget. The
// internal callers of functions that read their body here (the saga's
// ordersgw, the sweep's orderstatus) declare application/json.
func Decode(r *http.Request, dst any, limit int64) error {
	if limit <= 0 {
		limit = MaxBody
	}
	mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if mt = strings.TrimSpace(strings.ToLower(mt)); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return fault.E(fault.Malformed, fault.CodeUnsupportedMediaType, "Content-Type must be application/json")
	}
	if r.Body == nil {
		return fault.E(fault.Malformed, fault.CodeInvalidJSON, "request body is required")
	}
	body, err := ReadAtMost(r.Body, limit, "request body")
	switch {
	case fault.Is(err, fault.TooLarge, fault.CodeBodyTooLarge):
		return err
	case err != nil:
		return fault.Wrap(err, fault.Malformed, fault.CodeInvalidJSON, "could not read request body")
	}
	return DecodeBytes(body, dst)
}

// ReadAtMost reads body whole when it holds at most limit bytes. Past limit,
// or past the process's own cap (fnserve's max_request_bytes, an
// http.MaxBytesReader, which can be lower), it is 413 body_too_large, named
// as what; any other read error is returned as it is.
func ReadAtMost(body io.Reader, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	var capped *http.MaxBytesError
	if errors.As(err, &capped) {
		limit = capped.Limit
	} else if err != nil {
		return nil, err
	}
	if err != nil || int64(len(b)) > limit {
		return nil, fault.E(fault.TooLarge, fault.CodeBodyTooLarge, fmt.Sprintf("%s exceeds %d bytes", what, limit))
	}
	return b, nil
}

// DecodeBytes is Decode for a body already in memory. Both apply the text
// rule (text.go) to the body and to every string decoded into dst but those
// of fields tagged text:"opaque": 422 invalid_text.
func DecodeBytes(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fault.E(fault.Malformed, fault.CodeInvalidJSON, "request body is required")
	}
	if !utf8.Valid(body) {
		return textErr("the body", "is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		var own *fault.Error
		switch {
		case errors.As(err, &own) && own.Kind == fault.Malformed:
			return own // a type's own UnmarshalJSON said what is wrong (orders.ItemList)
		case errors.As(err, &syn):
			return fault.Wrap(err, fault.Malformed, fault.CodeInvalidJSON, fmt.Sprintf("malformed JSON at offset %d", syn.Offset))
		case errors.As(err, &typ):
			return fault.Wrap(err, fault.Malformed, fault.CodeInvalidJSON, fmt.Sprintf("field %q must be %s", typ.Field, typ.Type))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fault.Wrap(err, fault.Malformed, fault.CodeInvalidJSON, "unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return fault.Wrap(err, fault.Malformed, fault.CodeInvalidJSON, "malformed JSON")
		}
	}
	if dec.More() {
		return fault.E(fault.Malformed, fault.CodeInvalidJSON, "unexpected data after the JSON value")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return fault.E(fault.Malformed, fault.CodeInvalidJSON, "unexpected data after the JSON value")
	}
	if err := checkKeys(body, dst); err != nil {
		return err
	}
	if v := reflect.ValueOf(dst); !textClean(v, false) {
		return checkDecoded(v, "", false) // names the first string that breaks the rule
	}
	return nil
}

// HandlerFunc is a handler that reports failure by returning an error; Adapt
// turns that error into a response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Adapt serves h and turns its error into a problem response. The error is
// logged once here, in the request's context (telemetry.NewLogger adds the
// trace, span and call ids): 5xx at error level with the cause, 4xx at debug
// level; a 5xx whose request's context was cancelled (the client hung up,
// not a deadline) at info level, "the caller hung up". An error a database
// raised for bad text (BadText) is answered 422, so a client cannot make a
// function log at error level or fire the error-rate alerts with its input. An error with a RetryAfter() time.Duration method in
// its chain (a rate limit's) sets the Retry-After header in seconds. A 401
// carries the WWW-Authenticate challenge of its credential (auth.Challenge)
// unless h set one. An error returned after h began its answer (wrote its
// status) is logged the same, and the connection is cut (panic with
// http.ErrAbortHandler, which fnserve counts as a 500): a problem appended to
// the answer already sent would read as part of a success. Whether the
// answer began is asked of w itself when it can tell (AnswerBegun: fnserve's
// writer, which every function's handler is given), and otherwise recorded
// by a writer of Adapt's around w, one allocation per request.
func Adapt(log *slog.Logger, h HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hw := w
		began, ok := w.(answerBegun)
		if !ok {
			bw := &begunWriter{ResponseWriter: w}
			hw, began = bw, bw
		}
		err := h(hw, r)
		if err == nil {
			return
		}
		netted, badText := BadText(err), IsBadText(err)
		status := Status(netted)
		// trace_id, span_id and call_id come from the request's context
		// (telemetry.NewLogger's handler; fnserve puts the call id there):
		// added here too, every line carried each key twice.
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", status, "code", fault.CodeOf(netted)}
		switch {
		case status >= 500 && r.Context().Err() == context.Canceled && errors.Is(err, context.Canceled):
			// The client hung up (not a deadline: that is a 504 and a
			// failure): its stores' calls fail with its context and are
			// answered 503 to nobody. Not an alert. A failure of its
			// own (a detached call's deadline, a bug) met after the
			// hang-up stays one.
			log.InfoContext(r.Context(), "the caller hung up", append(attrs, "err", err.Error())...)
		case status >= 500:
			log.ErrorContext(r.Context(), "request failed", append(attrs, "err", err.Error())...)
		case badText:
			// The text rule let through text a database refused: a gap in
			// the first net worth a look, not an alert.
			log.WarnContext(r.Context(), "database refused the request's text", append(attrs, "err", err.Error())...)
		default:
			log.DebugContext(r.Context(), "request refused", append(attrs, "err", err.Error())...)
		}
		if began.AnswerBegun() {
			panic(http.ErrAbortHandler)
		}
		ForgetAnswer(w.Header())
		var wait interface{ RetryAfter() time.Duration }
		if errors.As(err, &wait) {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(wait.RetryAfter().Seconds())), 10))
		}
		if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
			w.Header().Set("WWW-Authenticate", auth.Challenge(r, netted))
		}
		WriteProblem(w, netted)
	}
}

// ForgetAnswer removes from h the headers a handler set for the answer it
// meant to give, which a problem that replaces that answer must not carry: a
// Content-Length that would cut the problem short, a Content-Encoding that
// would make it unreadable, a validator, location, cookie or replay mark sent
// with an error. What a problem may carry stays (WWW-Authenticate,
// Retry-After, Vary, Connection), and its own Content-Type and Cache-Control
// are set when it is written. Adapt calls it before an error's problem,
// fnserve before a panic's 500; only on those paths, at no cost per request.
func ForgetAnswer(h http.Header) {
	for _, name := range answerHeaders {
		delete(h, name)
	}
}

// answerHeaders are ForgetAnswer's headers (canonical names).
var answerHeaders = []string{"Content-Length", "Content-Encoding", "Content-Range", "Content-Disposition",
	"Content-Language", "Content-Location", "Etag", "Last-Modified", "Location", "Set-Cookie", "Trailer",
	"Idempotent-Replayed"}

// answerBegun is a writer that tells whether the answer through it began:
// a status was written (an informational one aside: 101 Switching Protocols
// is none), or a byte of body, or it was flushed. Only the writer a handler
// is given is asked, never one it wraps: a writer between the two that holds
// writes back would hide them from it.
type answerBegun interface {
	AnswerBegun() bool
}

// Final reports whether a status written begins the answer: any but an
// informational one (1xx), 101 Switching Protocols aside. fnserve's writer
// and begunWriter read a begun answer by it (answerBegun).
func Final(status int) bool {
	return status < 100 || status > 199 || status == http.StatusSwitchingProtocols
}

// begunWriter records whether a handler began its answer (answerBegun), for
// a writer that cannot tell.
type begunWriter struct {
	http.ResponseWriter
	begun bool
}

// AnswerBegun is answerBegun's.
func (w *begunWriter) AnswerBegun() bool { return w.begun }

func (w *begunWriter) WriteHeader(status int) {
	if Final(status) {
		w.begun = true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *begunWriter) Write(b []byte) (int, error) {
	w.begun = true
	return w.ResponseWriter.Write(b)
}

// Flush lets streamed answers through (it sends the status too).
func (w *begunWriter) Flush() {
	w.begun = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController and ServedBy the writer underneath.
func (w *begunWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// QueryInt parses an optional integer query parameter within [min, max].
func QueryInt(r *http.Request, name string, def, min, max int) (int, error) {
	raw, err := Query(r, name)
	if err != nil {
		return 0, err
	}
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < min || n > max {
		return 0, fault.E(fault.Invalid, fault.CodeInvalidRequest, fmt.Sprintf("%s must be an integer from %d to %d", name, min, max))
	}
	return n, nil
}

// Routes serves mux, answering requests that match no pattern with a 404
// problem, and requests whose path matches only under another method with a
// 405 problem (keeping ServeMux's Allow header), instead of ServeMux's
// plain-text pages.
func Routes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// The mux's own answer (404, 405 or a redirect) tells which it is; it
		// has no side effects, so run it against a probe.
		probe := &probeWriter{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			detail := "method not allowed on this route"
			if allow := probe.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
				// Name the methods to use (faas-cli invoke POSTs unless told
				// --method); the mux's list, never the client's method.
				detail += "; it answers " + allow
			}
			WriteProblem(w, fault.E(fault.MethodNotAllowed, fault.CodeMethodNotAllowed, detail))
		case http.StatusNotFound, 0:
			WriteProblem(w, fault.E(fault.NotFound, fault.CodeNotFound, "no such route"))
		default:
			mux.ServeHTTP(w, r) // a redirect to the canonical path
		}
	})
}

// probeWriter records the status a handler answers with and discards the body.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }

func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

func (p *probeWriter) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

// ServedBy tells the function's request metrics and server span (fnserve,
// telemetry.Server) that function, a member of the bundle w's request
// reached, served it: the metrics count it under that function, not the
// bundle's name, and the span is named after it. It tells every writer of
// the Unwrap chain of w that has a SetServedBy; without one it does nothing.
func ServedBy(w http.ResponseWriter, function string) {
	for {
		if s, ok := w.(interface{ SetServedBy(string) }); ok {
			s.SetServedBy(function)
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}
