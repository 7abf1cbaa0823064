// Package fntest holds the helpers every function's tests share: a request
// against a handler, the internal call of another function or the connector
// (POST / with the internal credential), a token verifier and a bearer token
// signed with the test key pair,
// an event envelope as the connector delivers it with the relay's signature,
// the checks every problem and JSON answer must pass, and the headers of an
// answer that a problem replacing it must drop (AnswerHeaders). Only tests
// import it.
package fntest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/auth/authtest"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/routes"
)

// Do sends a request to h and returns the recorded response. An empty
// contentType sends no Content-Type header; header adds more headers as name,
// value pairs.
func Do(tb testing.TB, h http.Handler, method, target, contentType, body string, header ...string) *httptest.ResponseRecorder {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Call is an internal call: POST / with a JSON body and, when credential is
// not empty, the internal credential header. It returns the status and the
// body decoded as a JSON object, and fails the test when the body is not JSON.
func Call(tb testing.TB, h http.Handler, credential, body string) (int, map[string]any) {
	tb.Helper()
	var header []string
	if credential != "" {
		header = []string{auth.InternalHeader, credential}
	}
	w := Do(tb, h, http.MethodPost, "/", "application/json", body, header...)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		tb.Fatalf("status %d, body %q is not JSON", w.Code, w.Body)
	}
	return w.Code, out
}

// Internal is the verifier of every internal caller's test credential
// (authtest): what an internal function is built with in a test.
func Internal() *auth.InternalVerifier { return authtest.Verifier() }

// Caller is the test credential of caller (authtest.Credential).
func Caller(caller string) string { return authtest.Credential(caller) }

// RefusesOtherCallers sends body (POST /, JSON, with header pairs) to h
// with a valid credential of every internal caller function does not
// accept (routes.Callers), and requires 403 forbidden each time: the
// caller checks that nothing changed. It returns how many callers it tried.
func RefusesOtherCallers(tb testing.TB, h http.Handler, function, body string, header ...string) int {
	tb.Helper()
	accepted := routes.Callers(function)
	if len(accepted) == 0 {
		tb.Fatalf("%s accepts no internal caller in routes.Table", function)
	}
	n := 0
	for _, c := range authtest.Callers() {
		if slices.Contains(accepted, c) {
			continue
		}
		n++
		w := Do(tb, h, http.MethodPost, "/", "application/json", body, append([]string{auth.InternalHeader, Caller(c)}, header...)...)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"forbidden"`) {
			tb.Errorf("%s called by %s: %d %s, want 403 forbidden", function, c, w.Code, w.Body)
		}
	}
	return n
}

// The tests' token keys: one Ed25519 pair per test binary, standing in for
// login-user's jwt-signing-key and every verifier's jwt-verify-key.
// JWTSigningKey and JWTVerifyKey are the PEM texts, for tests that build a
// function from a secrets directory.
var _, JWTSigningKey, JWTVerifyKey = auth.NewTestKeys(0)

// signers maps each *auth.Verifier that Tokens returned to the signer of its
// tokens' lifetime, so that Bearer can sign for it: a verifier itself cannot.
var signers sync.Map

// Tokens returns the verifier of the test key pair; Bearer signs tokens for
// it that live ttl (0: the default, 15 minutes).
func Tokens(tb testing.TB, ttl time.Duration) *auth.Verifier {
	tb.Helper()
	s, err := auth.ParseSigner(JWTSigningKey, ttl)
	if err != nil {
		tb.Fatal(err)
	}
	v := s.Verifier()
	signers.Store(v, s)
	return v
}

// Signer returns the signer of the test key pair whose tokens live ttl (0:
// the default), for login-user's tests.
func Signer(tb testing.TB, ttl time.Duration) *auth.Signer {
	tb.Helper()
	s, err := auth.ParseSigner(JWTSigningKey, ttl)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Issue signs a token for user with role, for tokens (a verifier Tokens
// returned), and returns it.
func Issue(tb testing.TB, tokens *auth.Verifier, user uuid.UUID, role string) string {
	tb.Helper()
	s, ok := signers.Load(tokens)
	if !ok {
		tb.Fatal("fntest.Issue: the verifier does not come from fntest.Tokens")
	}
	tok, err := s.(*auth.Signer).Issue(user, role)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// Bearer issues a token for user with role and returns it as an
// Authorization header value ("Bearer <token>").
func Bearer(tb testing.TB, tokens *auth.Verifier, user uuid.UUID, role string) string {
	tb.Helper()
	return "Bearer " + Issue(tb, tokens, user, role)
}

// Envelope returns the JSON of a new event of type typ from source about
// subject (may be empty), as the connector delivers it.
func Envelope(tb testing.TB, source, typ, subject string, data any) string {
	tb.Helper()
	ev, err := events.New(context.Background(), source, typ, subject, data)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// The tests' event keys: one Ed25519 pair per test binary, standing in for
// the outbox relay's event-signing-key and the consumers' event-verify-key.
var eventSigner, eventVerifier = events.NewTestKeys()

// Events is a consumer's event reader that trusts Sign's key only.
func Events() inbox.Events {
	ev, err := inbox.NewEvents(eventVerifier, false)
	if err != nil {
		panic(err) // only without a verifier
	}
	return ev
}

// VerifyKey is the PEM public key Events trusts, the content of the
// event-verify-key secret of a consumer built from configuration in a test.
func VerifyKey() string {
	pub, err := eventSigner.Public()
	if err != nil {
		panic(err)
	}
	return pub
}

// Sign returns the Shop-Signature header value the outbox relay would give
// body, with the key Events trusts.
func Sign(body string) string { return eventSigner.Sign([]byte(body)) }

// leaks are fragments that must never reach a client: driver, SQL and Go
// internals.
var leaks = []string{"SQLSTATE", "pgx", "pq:", "json:", "duplicate key", "violates", "argon2", "panic", "goroutine", "users_email_key", "password_hash"}

// Problem checks that w is an application/problem+json response with status
// and code and no internal detail, and returns it. Any extra strings are
// also forbidden in the body (e.g. the email a request carried).
func Problem(tb testing.TB, w *httptest.ResponseRecorder, status int, code string, forbidden ...string) fnhttp.Problem {
	tb.Helper()
	if w.Code != status {
		tb.Fatalf("status = %d, want %d; body: %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	body := w.Body.String()
	var p fnhttp.Problem
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		tb.Fatalf("problem body %q: %v", body, err)
	}
	if p.Status != status || p.Code != code || p.Title == "" || p.Type == "" {
		tb.Fatalf("problem = %+v, want status %d code %q with a type and title", p, status, code)
	}
	for _, s := range append(leaks, forbidden...) {
		if s != "" && strings.Contains(strings.ToLower(body), strings.ToLower(s)) {
			tb.Fatalf("problem body leaks %q: %s", s, body)
		}
	}
	return p
}

// JSON checks that w has status and an application/json body, and decodes
// the body into a value of type T (fields T does not have are ignored).
func JSON[T any](tb testing.TB, w *httptest.ResponseRecorder, status int) T {
	tb.Helper()
	var v T
	if w.Code != status {
		tb.Fatalf("status = %d, want %d; body: %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		tb.Fatalf("Content-Type = %q, want application/json", ct)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		tb.Fatalf("body %q: %v", w.Body, err)
	}
	return v
}
