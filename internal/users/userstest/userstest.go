// Package userstest holds the helpers the users functions' tests share: a
// store on a fresh real database, requests against a handler, and the checks
// every problem response must pass.
package userstest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

// JWTKey is a 32-byte signing key for test tokens.
const JWTKey = "test-jwt-key-0123456789abcdefghij"

// Store returns a store on a freshly migrated database of its own, dropped
// when the test ends. It fails the test when PostgreSQL is unreachable.
func Store(tb testing.TB) *usersdb.Store {
	tb.Helper()
	return usersdb.New(pgtest.Open(tb, usersdb.Migrations()))
}

// Register creates a customer directly in the store.
func Register(tb testing.TB, s *usersdb.Store, email, password, name string) users.User {
	tb.Helper()
	reg, err := users.NewRegistration(email, password, name)
	if err != nil {
		tb.Fatal(err)
	}
	u, err := s.Register(context.Background(), reg)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// Do sends a request to h and returns the recorded response. An empty
// contentType sends no Content-Type header; header adds more headers.
func Do(tb testing.TB, h http.Handler, method, path, contentType, body string, header ...string) *httptest.ResponseRecorder {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
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
// the body into a value of type T, refusing fields T does not have.
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
