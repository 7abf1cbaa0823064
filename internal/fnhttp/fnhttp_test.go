package fnhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/telemetry"
	"github.com/shopfaas/shop/internal/users"
)

type payload struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		contentType   string // application/json when empty, unless noContentType
		noContentType bool
		nilBody       bool
		limit         int64
		want          payload
		wantKind      fault.Kind
		wantCode      fault.Code
	}{
		{name: "valid", body: `{"name":"a","count":2}`, contentType: "application/json", want: payload{"a", 2}},
		{name: "valid with charset", body: `{"name":"a"}`, contentType: "application/json; charset=utf-8", want: payload{Name: "a"}},
		{name: "problem+json style suffix", body: `{"count":1}`, contentType: "application/merge-patch+json", want: payload{Count: 1}},
		{name: "no content type", body: `{"count":1}`, noContentType: true, wantKind: fault.Malformed, wantCode: "unsupported_media_type"},
		{name: "no content type, no body", nilBody: true, noContentType: true, wantKind: fault.Malformed, wantCode: "unsupported_media_type"},
		{name: "empty content type", body: `{"count":1}`, contentType: " ", wantKind: fault.Malformed, wantCode: "unsupported_media_type"},
		{name: "upper-case content type", body: `{"count":1}`, contentType: "Application/JSON", want: payload{Count: 1}},
		{name: "malformed", body: `{"name":`, wantKind: fault.Malformed, wantCode: "invalid_json"},
		{name: "syntax error", body: `{"name" "a"}`, wantKind: fault.Malformed, wantCode: "invalid_json"},
		{name: "unknown field", body: `{"name":"a","admin":true}`, wantKind: fault.Malformed, wantCode: "invalid_json"},
		{name: "wrong type", body: `{"count":"many"}`, wantKind: fault.Malformed, wantCode: "invalid_json"},
		{name: "trailing value", body: `{"name":"a"} {"name":"b"}`, wantKind: fault.Malformed, wantCode: "invalid_json"},
		{name: "trailing garbage", body: `{"name":"a"} }`, wantKind: fault.Malformed, wantCode: "invalid_json"},
		{name: "empty body", body: ``, wantKind: fault.Malformed, wantCode: "invalid_json"},
		{name: "blank body", body: " \n\t", wantKind: fault.Malformed, wantCode: "invalid_json"},
		{name: "nil body", nilBody: true, wantKind: fault.Malformed, wantCode: "invalid_json"},
		{name: "oversized", body: `{"name":"` + strings.Repeat("x", 100) + `"}`, limit: 50, wantKind: fault.TooLarge, wantCode: "body_too_large"},
		{name: "exactly the limit", body: `{"name":"abc"}`, limit: int64(len(`{"name":"abc"}`)), want: payload{Name: "abc"}},
		{name: "wrong content type", body: `{"name":"a"}`, contentType: "text/plain", wantKind: fault.Malformed, wantCode: "unsupported_media_type"},
		{name: "form content type", body: `name=a`, contentType: "application/x-www-form-urlencoded", wantKind: fault.Malformed, wantCode: "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			if tt.nilBody {
				r.Body = nil
			}
			if ct := tt.contentType; !tt.noContentType {
				if ct == "" {
					ct = "application/json"
				}
				r.Header.Set("Content-Type", ct)
			}
			var got payload
			err := fnhttp.Decode(r, &got, tt.limit)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				return
			}
			if fault.KindOf(err) != tt.wantKind || fault.CodeOf(err) != tt.wantCode {
				t.Fatalf("err = %v (kind %v), want kind %v code %s", err, fault.KindOf(err), tt.wantKind, tt.wantCode)
			}
			if s := fnhttp.Status(err); s < 400 || s > 499 {
				t.Errorf("status %d, want 4xx", s)
			}
		})
	}
}

func TestDecodeOversizedIs413(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat(" ", fnhttp.MaxBody+1)))
	r.Header.Set("Content-Type", "application/json")
	err := fnhttp.Decode(r, &payload{}, 0) // 0 means the default limit
	if got := fnhttp.Status(err); got != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413 (err %v)", got, err)
	}
}

// fnserve caps every body at max_request_bytes (http.MaxBytesReader), which
// an operator may set below a handler's limit: past the cap the body is too
// large, 413, where the failed read answered 400 invalid_json.
func TestDecodePastTheProcessCapIs413(t *testing.T) {
	body := `{"name":"` + strings.Repeat("x", 200) + `"}`
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(body)), 100)
	r.Header.Set("Content-Type", "application/json")
	err := fnhttp.Decode(r, &payload{}, 0) // the default limit, 64 KiB, above the cap
	if !fault.Is(err, fault.TooLarge, fault.CodeBodyTooLarge) || fnhttp.Status(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("Decode = %v (status %d), want 413 body_too_large", err, fnhttp.Status(err))
	}
}

func TestProblemFor(t *testing.T) {
	secret := errors.New("password=hunter2 at db.internal:5432")
	tests := []struct {
		name string
		err  error
		want fnhttp.Problem
	}{
		{"internal from a plain error", secret,
			fnhttp.Problem{Type: "about:blank", Title: "Internal Server Error", Status: 500, Code: "internal", Detail: "internal error"}},
		{"Internalf hides its cause", fault.Internalf("query: %w", secret),
			fnhttp.Problem{Type: "about:blank", Title: "Internal Server Error", Status: 500, Code: "internal", Detail: "internal error"}},
		{"internal kind with a chatty message is still generic", fault.Wrap(secret, fault.Internal, "db", "db at db.internal failed"),
			fnhttp.Problem{Type: "about:blank", Title: "Internal Server Error", Status: 500, Code: "db", Detail: "internal error"}},
		{"client error shows its safe message, not the cause", fault.Wrap(secret, fault.Conflict, "email_taken", "email already registered"),
			fnhttp.Problem{Type: "about:blank", Title: "Conflict", Status: 409, Code: "email_taken", Detail: "email already registered"}},
		{"not found", fault.E(fault.NotFound, "not_found", "no such product"),
			fnhttp.Problem{Type: "about:blank", Title: "Not Found", Status: 404, Code: "not_found", Detail: "no such product"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fnhttp.ProblemFor(tt.err)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			b, _ := json.Marshal(got)
			if bytes.Contains(b, []byte("hunter2")) {
				t.Errorf("problem leaks the cause: %s", b)
			}
		})
	}
}

// A client error's extension members are written after the standard ones and
// never replace them; an internal error shows none.
func TestProblemWritesTheErrorsExtensionMembers(t *testing.T) {
	conflict := &fault.Error{Kind: fault.Conflict, Code: "currency_mismatch", Message: "mixed",
		Members: map[string]any{"currencies": map[string][]string{"EUR": {"b"}, "USD": {"a"}}, "status": 200}}
	rec := httptest.NewRecorder()
	fnhttp.WriteProblem(rec, conflict)
	want := `{"type":"about:blank","title":"Conflict","status":409,"code":"currency_mismatch","detail":"mixed","currencies":{"EUR":["b"],"USD":["a"]}}` + "\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	internal := &fault.Error{Kind: fault.Internal, Code: "internal", Message: "boom", Members: map[string]any{"secret": "hunter2"}}
	if b, err := json.Marshal(fnhttp.ProblemFor(internal)); err != nil || bytes.Contains(b, []byte("hunter2")) {
		t.Errorf("internal problem = %s, %v; want no members", b, err)
	}
}

func TestStatusTableCoversEveryKind(t *testing.T) {
	for k := fault.Internal; k <= fault.PreconditionRequired; k++ {
		s := fnhttp.Status(fault.E(k, "x", "x"))
		if s < 400 || s > 599 || (k != fault.Internal && k != fault.Unavailable && k != fault.Timeout && s >= 500) || fault.Kind(k).String() == fmt.Sprintf("kind(%d)", int(k)) {
			t.Errorf("kind %v → status %d", k, s)
		}
	}
}

func TestUnknownKindIs500(t *testing.T) {
	rec := httptest.NewRecorder()
	fnhttp.WriteProblem(rec, fault.E(fault.Kind(999), "weird", "weird"))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d body %q", rec.Code, rec.Body.String())
	}
}

func TestAdapt(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantLevel  slog.Level
	}{
		{"internal is logged at error with the cause", fault.Internalf("boom: %s", "cause-detail"), 500, slog.LevelError},
		{"client error is logged at debug", fault.E(fault.Invalid, "invalid_request", "bad"), 422, slog.LevelDebug},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			// The functions' logger, and a request as fnserve hands it on:
			// the call id and the server span in its context.
			log := telemetry.NewLogger(&buf, "get-order", slog.LevelDebug)
			h := fnhttp.Adapt(log, func(http.ResponseWriter, *http.Request) error { return tt.err })
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header.Set("X-Call-Id", "call-1")
			ctx := trace.ContextWithSpanContext(telemetry.WithCallID(req.Context(), "call-1"), trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 2}, TraceFlags: trace.FlagsSampled}))
			h.ServeHTTP(rec, req.WithContext(ctx))

			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var p fnhttp.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != tt.wantStatus || p.Code != string(fault.CodeOf(tt.err)) {
				t.Errorf("body %q (%v)", rec.Body.String(), err)
			}
			if strings.Contains(rec.Body.String(), "cause-detail") {
				t.Errorf("body leaks the cause: %s", rec.Body.String())
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("logged %d lines, want exactly 1: %q", len(lines), lines)
			}
			var rec1 map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec1); err != nil {
				t.Fatal(err)
			}
			if rec1["level"] != tt.wantLevel.String() || rec1["call_id"] != "call-1" || rec1["status"] != float64(tt.wantStatus) ||
				rec1["trace_id"] != trace.SpanContextFromContext(ctx).TraceID().String() {
				t.Errorf("log line %v", rec1)
			}
			// A JSON object with a key twice is read differently by
			// different tools (the last one wins here, the first there).
			for _, key := range []string{"function", "trace_id", "span_id", "call_id", "status", "code", "err"} {
				if n := strings.Count(lines[0], `"`+key+`":`); n != 1 {
					t.Errorf("key %q %d times in %s, want once", key, n, lines[0])
				}
			}
			if tt.wantStatus == 500 && !strings.Contains(lines[0], "cause-detail") {
				t.Errorf("the cause of a 500 must be logged: %s", lines[0])
			}
		})
	}
	t.Run("success logs nothing", func(t *testing.T) {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		rec := httptest.NewRecorder()
		fnhttp.Adapt(log, func(w http.ResponseWriter, _ *http.Request) error {
			return fnhttp.JSON(w, http.StatusCreated, map[string]int{"n": 1})
		}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
		if rec.Code != http.StatusCreated || rec.Header().Get("Content-Type") != "application/json" || buf.Len() != 0 {
			t.Errorf("status %d ct %q log %q", rec.Code, rec.Header().Get("Content-Type"), buf.String())
		}
	})
}

func TestLazyRetriesAfterFailedBuild(t *testing.T) {
	var builds atomic.Int32
	h := fnhttp.NewLazy(func(*config.Reader, *slog.Logger) (http.Handler, error) {
		if builds.Add(1) == 1 {
			return nil, errors.New("database down: secret-host")
		}
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }), nil
	}, config.New(config.Env(nil)), slog.New(slog.DiscardHandler))
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		return rec
	}
	first := serve()
	if first.Code != http.StatusServiceUnavailable || first.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("first: %d %q", first.Code, first.Header().Get("Content-Type"))
	}
	if strings.Contains(first.Body.String(), "secret-host") {
		t.Errorf("503 body leaks the build error: %s", first.Body.String())
	}
	got := []int{serve().Code, serve().Code}
	if diff := cmp.Diff([]int{http.StatusTeapot, http.StatusTeapot}, got); diff != "" {
		t.Errorf("after recovery (-want +got):\n%s", diff)
	}
	if n := builds.Load(); n != 2 {
		t.Errorf("built %d times, want 2 (retry once, then keep)", n)
	}
}

// Readiness checks and requests share one build under one lock: however
// they interleave, a build that succeeds runs once, and a check reports
// what a request would meet.
func TestLazyReadyAndRequestsShareOneBuild(t *testing.T) {
	var builds atomic.Int32
	h := fnhttp.NewLazy(func(*config.Reader, *slog.Logger) (http.Handler, error) {
		builds.Add(1)
		time.Sleep(10 * time.Millisecond) // a slow build, so the callers overlap it
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }), nil
	}, config.New(config.Env(nil)), slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if i%2 == 0 {
				if err := h.Ready(context.Background()); err != nil {
					t.Errorf("ready: %v", err)
				}
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if rec.Code != http.StatusTeapot {
				t.Errorf("request: %d", rec.Code)
			}
		})
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want 1", n)
	}
}

// A caller gone before its turn (a readiness probe that timed out behind a
// slow build) starts no build of its own: it is answered unavailable, and
// the next live caller builds.
func TestLazyStartsNoBuildForAGoneCaller(t *testing.T) {
	var builds atomic.Int32
	h := fnhttp.NewLazy(func(*config.Reader, *slog.Logger) (http.Handler, error) {
		builds.Add(1)
		return http.NotFoundHandler(), nil
	}, config.New(config.Env(nil)), slog.New(slog.DiscardHandler))
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Ready(gone); err == nil {
		t.Error("ready for a gone caller, before any build")
	}
	if n := builds.Load(); n != 0 {
		t.Errorf("built %d times for a gone caller, want 0", n)
	}
	if err := h.Ready(context.Background()); err != nil || builds.Load() != 1 {
		t.Errorf("a live caller: %v, %d builds; want ready after 1", err, builds.Load())
	}
	if err := h.Ready(gone); err != nil {
		t.Errorf("once built, a gone caller is told the truth: %v", err)
	}
}

// A retried build reads the environment anew: a variable that was missing
// at the first request and set before the second is seen, not the first
// attempt's "required" error again.
func TestLazyRetryReadsTheEnvironmentAnew(t *testing.T) {
	env := map[string]string{}
	h := fnhttp.NewLazy(func(c *config.Reader, _ *slog.Logger) (http.Handler, error) {
		dsn := c.Required("FIXTURE_DATABASE_URL")
		if err := c.Err(); err != nil {
			return nil, err
		}
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, dsn) }), nil
	}, config.New(config.Env(env)), slog.New(slog.DiscardHandler))
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		return rec
	}
	if got := serve(); got.Code != http.StatusServiceUnavailable {
		t.Fatalf("without the variable: %d, want 503", got.Code)
	}
	env["FIXTURE_DATABASE_URL"] = "postgres://fixture"
	if got := serve(); got.Code != http.StatusOK || got.Body.String() != "postgres://fixture" {
		t.Fatalf("after the variable was set: %d %q, want 200 with its value", got.Code, got.Body.String())
	}
}

func TestRoutes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/products/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.PathValue("id"))
	})
	h := fnhttp.Routes(mux)
	tests := []struct {
		method, path string
		wantStatus   int
		wantProblem  bool
	}{
		{"GET", "/api/v1/products/42", 200, false},
		{"GET", "/api/v1/nothing", 404, true},
		{"GET", "/", 404, true},
		{"POST", "/api/v1/products/42", 405, true},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			isProblem := rec.Header().Get("Content-Type") == "application/problem+json"
			if isProblem != tt.wantProblem {
				t.Errorf("problem body = %v, want %v (%q)", isProblem, tt.wantProblem, rec.Body.String())
			}
			if tt.wantStatus == 405 && (rec.Header().Get("Allow") == "" || !strings.Contains(rec.Body.String(), `"code":"method_not_allowed"`)) {
				t.Errorf("405 without Allow or code: %v %q", rec.Header(), rec.Body.String())
			}
			// faas-cli invoke POSTs unless told --method: the detail names
			// the methods to use instead.
			if tt.wantStatus == 405 && !strings.Contains(rec.Body.String(), "GET, HEAD") {
				t.Errorf("405 detail does not name the allowed methods: %q", rec.Body.String())
			}
			if tt.wantStatus == 404 && !strings.Contains(rec.Body.String(), `"code":"not_found"`) {
				t.Errorf("body %q", rec.Body.String())
			}
		})
	}
}

func TestQueryInt(t *testing.T) {
	tests := []struct {
		query   string
		want    int
		wantErr bool
	}{
		{"", 20, false},
		{"limit=1", 1, false},
		{"limit=100", 100, false},
		{"limit=0", 0, true},
		{"limit=101", 0, true},
		{"limit=-5", 0, true},
		{"limit=ten", 0, true},
		{"limit=1.5", 0, true},
		{"limit=99999999999999999999999", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/?"+tt.query, nil)
			got, err := fnhttp.QueryInt(r, "limit", 20, 1, 100)
			if tt.wantErr {
				if fault.KindOf(err) != fault.Invalid || fnhttp.Status(err) != 422 {
					t.Errorf("err = %v, want an Invalid fault", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// Every problem a function answers maps back to the error it was written
// from: same kind, same code, same message.
func TestErrorFromInvertsEveryProblemAnswer(t *testing.T) {
	for k := fault.Internal + 1; k <= fault.PreconditionRequired; k++ {
		sent := fault.E(k, "some_code", "what happened")
		rec := httptest.NewRecorder()
		fnhttp.WriteProblem(rec, sent)
		got := fnhttp.ErrorFrom(rec.Code, rec.Body.Bytes())
		if got.Kind != sent.Kind || got.Code != sent.Code || got.Message != sent.Message {
			t.Errorf("%v answered %d: back as %v %q %q", k, rec.Code, got.Kind, got.Code, got.Message)
		}
	}
	rec := httptest.NewRecorder()
	fnhttp.WriteProblem(rec, errors.New("secret cause"))
	if got := fnhttp.ErrorFrom(rec.Code, rec.Body.Bytes()); got.Kind != fault.Internal || got.Code != fault.CodeInternal {
		t.Errorf("500 back as %v %q", got.Kind, got.Code)
	}
}

// Answers that no function wrote (the gateway's, the watchdog's, a proxy's)
// map by status alone; a 404 without a problem body is a missing function,
// which may come back, not a missing resource.
func TestErrorFromAnswersWithoutAProblemBody(t *testing.T) {
	tests := []struct {
		status int
		body   string
		kind   fault.Kind
		code   fault.Code
	}{
		{http.StatusNotFound, `function "reserve-stock" not found`, fault.Unavailable, fault.CodeUnavailable},
		{http.StatusNotFound, `{"status":404,"code":"not_found","detail":"no such order"}`, fault.NotFound, fault.CodeNotFound},
		{http.StatusBadGateway, "function unreachable", fault.Unavailable, fault.CodeUnavailable},
		{http.StatusServiceUnavailable, "no replica available", fault.Unavailable, fault.CodeUnavailable},
		{http.StatusGatewayTimeout, "", fault.Timeout, fault.CodeTimeout},
		{http.StatusRequestTimeout, "", fault.Timeout, fault.CodeTimeout},
		{http.StatusTooManyRequests, "slow down", fault.RateLimited, fault.CodeRateLimited},
		{http.StatusInternalServerError, "<html>oops</html>", fault.Internal, fault.CodeInternal},
		{http.StatusUnsupportedMediaType, "", fault.Malformed, "malformed"},
		{http.StatusTeapot, `{"code":"teapot"}`, fault.Internal, "teapot"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %.20s", tt.status, tt.body), func(t *testing.T) {
			got := fnhttp.ErrorFrom(tt.status, []byte(tt.body))
			if got.Kind != tt.kind || got.Code != tt.code || got.Message == "" {
				t.Errorf("ErrorFrom = %v %q %q, want %v %q", got.Kind, got.Code, got.Message, tt.kind, tt.code)
			}
		})
	}
}

// A body that does not declare its type is refused by Decode itself, as one
// that declares a type other than JSON is: the same answer (400
// unsupported_media_type, the same detail) on every operation that takes a
// body, with no handler left to check it first.
func TestDecodeRefusesABodyWithoutAContentTypeAsANonJSONOne(t *testing.T) {
	decode := func(contentType string) fnhttp.Problem {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"name":"a"}`))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		err := fnhttp.Decode(r, &payload{}, 0)
		if err == nil {
			t.Fatalf("Content-Type %q: a body was decoded", contentType)
		}
		return fnhttp.ProblemFor(err)
	}
	want := fnhttp.Problem{Type: "about:blank", Title: "Bad Request", Status: http.StatusBadRequest,
		Code: "unsupported_media_type", Detail: "Content-Type must be application/json"}
	if diff := cmp.Diff(want, decode("text/plain")); diff != "" {
		t.Fatalf("a declared text/plain body (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, decode("")); diff != "" {
		t.Errorf("a body without Content-Type (-want +got):\n%s", diff)
	}
}

// A failing build is tried at every readiness probe (OpenFaaS probes every
// 2 s per replica), but logged at ERROR the first time, whenever its message
// changes, and at most once a minute while it repeats, with how many repeats
// were not logged; once built, one line says so.
func TestLazyLogsARepeatedFailureOnceAMinute(t *testing.T) {
	cause := "database down"
	var builds atomic.Int32
	up := false
	var buf bytes.Buffer
	h := fnhttp.NewLazy(func(*config.Reader, *slog.Logger) (http.Handler, error) {
		builds.Add(1)
		if up {
			return http.NotFoundHandler(), nil
		}
		return nil, errors.New(cause)
	}, config.New(config.Env(nil)), slog.New(slog.NewJSONHandler(&buf, nil)))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fnhttp.SetClock(h, func() time.Time { return now })
	probe := func(after time.Duration) {
		t.Helper()
		now = now.Add(after)
		if err := h.Ready(context.Background()); (err == nil) != up {
			t.Fatalf("ready at %s: %v, want ready %t", now.Format(time.TimeOnly), err, up)
		}
	}

	probe(0) // logged: the first failure
	for range 29 {
		probe(2 * time.Second) // repeats within the minute: not logged
	}
	probe(2 * time.Second) // a minute after the first line: logged, 29 suppressed
	probe(2 * time.Second) // suppressed
	cause = "secret missing"
	probe(2 * time.Second) // another failure: logged at once
	probe(2 * time.Second) // suppressed
	cause = "database down"
	probe(2 * time.Second) // differs from the last: logged at once
	probe(2 * time.Second) // suppressed
	up = true
	probe(2 * time.Second) // built: one line, with the repeats not logged
	probe(2 * time.Second) // nothing more
	if n := builds.Load(); n != 37 {
		t.Errorf("built %d times for 38 probes, want 37 (every probe until one succeeds)", n)
	}

	type line struct {
		Level, Msg, Err string
		Suppressed      int
	}
	var got []line
	for l := range strings.Lines(buf.String()) {
		var e line
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		got = append(got, e)
	}
	want := []line{
		{"ERROR", "function not ready", "database down", 0},
		{"ERROR", "function not ready", "database down", 29},
		{"ERROR", "function not ready", "secret missing", 1},
		{"ERROR", "function not ready", "database down", 1},
		{"INFO", "function ready", "", 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

// Every 401 carries a WWW-Authenticate challenge (RFC 9110 section 11.6.1),
// the one for the credential the route takes: on a bearer-token route
// `Bearer realm="shop"`, with error="invalid_token" when a bearer token was
// sent and failed (RFC 6750 section 3: none when the request carried no
// bearer credential); on login, whose credentials are in the body, a
// challenge that invites no bearer token; on an internal function, one
// naming the internal credential. Until 2026-12-07 the functions' 401s
// carried none.
func TestEvery401CarriesTheChallengeOfItsCredential(t *testing.T) {
	tokens := fntest.Tokens(t, 0)
	bearer := fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error {
		_, err := tokens.FromRequest(r)
		return err
	})
	internal := fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error {
		return fnhttp.CheckInternal(r, fntest.Internal(), "reserve-stock")
	})
	login := fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error {
		return users.ErrInvalidCredentials
	})
	for _, tc := range []struct {
		name          string
		h             http.Handler
		header, value string
		want          string
	}{
		{"no token", bearer, "", "", `Bearer realm="shop"`},
		{"another scheme", bearer, "Authorization", "Basic Y2Fyb2w6cGFzc3dvcmQ=", `Bearer realm="shop"`},
		{"a bad token", bearer, "Authorization", "Bearer not.a.token", `Bearer realm="shop", error="invalid_token"`},
		{"a bad token, lower-case scheme", bearer, "Authorization", "bearer not.a.token", `Bearer realm="shop", error="invalid_token"`},
		{"bad credentials on login", login, "", "", `Login realm="shop"`},
		{"no internal credential", internal, "", "", `Internal realm="shop"`},
		{"a bad internal credential", internal, "X-Internal-Token", "saga:nope", `Internal realm="shop"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.header != "" {
				r.Header.Set(tc.header, tc.value)
			}
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", w.Code)
			}
			if got := w.Header().Values("WWW-Authenticate"); len(got) != 1 || got[0] != tc.want {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.want)
			}
		})
	}
	// A 403 (authenticated, not allowed) carries no challenge.
	w := httptest.NewRecorder()
	fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error {
		return fault.E(fault.Forbidden, fault.CodeForbidden, "admin role required")
	}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := w.Header().Get("WWW-Authenticate"); w.Code != http.StatusForbidden || got != "" {
		t.Errorf("a 403: status %d, WWW-Authenticate %q, want none", w.Code, got)
	}
}

// A handler that fails after it has begun its answer does not have a problem
// appended to what it wrote: the status is already sent, so the caller would
// take the 200 and its broken body for a success. The connection is cut
// instead (the caller sees an error), and the error is logged as any other.
func TestAnErrorAfterTheAnswerBeganCutsIt(t *testing.T) {
	var log proctest.Output
	srv := httptest.NewServer(fnhttp.Adapt(slog.New(slog.NewJSONHandler(&log, nil)), func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"items":[`)
		return fault.Internalf("the rows broke off: %s", "cause-detail")
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Errorf("an error after the answer began: %d %q, want the connection cut", resp.StatusCode, b)
		}
	}
	srv.Close() // waits for the handler: its line is logged
	if s := log.String(); !strings.Contains(s, "request failed") || !strings.Contains(s, "cause-detail") {
		t.Errorf("the error is not logged with its cause: %s", s)
	}
}

// A store's call that failed because the client hung up (the request's
// context cancelled) is wrapped Unavailable like any other: Adapt logs it at
// info, not as a failure at error level, which would be a false alarm. A
// deadline that passed (504) is still a failure.
func TestACallerThatHungUpIsNotLoggedAsAFailure(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ctx       func(context.Context) (context.Context, context.CancelFunc)
		err       error
		wantLevel string
		wantMsg   string
	}{
		{"cancelled", context.WithCancel, fault.Wrap(context.Canceled, fault.Unavailable, fault.CodeUnavailable, "products unavailable"),
			"INFO", "the caller hung up"},
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 0) },
			fault.Wrap(context.DeadlineExceeded, fault.Timeout, fault.CodeTimeout, "products timed out"), "ERROR", "request failed"},
		{"cancelled, a failure of its own", context.WithCancel,
			fault.Wrap(context.DeadlineExceeded, fault.Timeout, fault.CodeTimeout, "the processor timed out"), "ERROR", "request failed"},
		{"live", context.WithCancel, fault.Wrap(errors.New("connection refused"), fault.Unavailable, fault.CodeUnavailable, "products unavailable"),
			"ERROR", "request failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, nil))
			ctx, cancel := tc.ctx(context.Background())
			defer cancel()
			if strings.HasPrefix(tc.name, "cancelled") {
				cancel()
			}
			fnhttp.Adapt(log, func(http.ResponseWriter, *http.Request) error { return tc.err }).
				ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/v1/products/x", nil).WithContext(ctx))
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log %q: %v", buf.String(), err)
			}
			if line["level"] != tc.wantLevel || line["msg"] != tc.wantMsg || line["err"] == nil {
				t.Errorf("logged %v, want %s %q with the error", line, tc.wantLevel, tc.wantMsg)
			}
		})
	}
}
