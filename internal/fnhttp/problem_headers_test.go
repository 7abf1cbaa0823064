package fnhttp_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// A handler that returns an error after it set the headers of the answer it
// meant to give (but before it began it) gets its problem, readable: the
// headers that described that answer's body (its length, encoding, range,
// validator, location, cookies, replay) are not sent with the problem, as
// fnserve drops them from a panic's 500. What a problem carries stays: the
// handler's own challenge on a 401, Vary, and Adapt's Retry-After. Until
// 2026-12-07 they went out with it: a Content-Length cut the problem short,
// a Content-Encoding: gzip made it unreadable.
func TestAnErrorsProblemCarriesNoHeaderOfTheAnswerItReplaces(t *testing.T) {
	srv := httptest.NewServer(fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, _ *http.Request) error {
		h := w.Header()
		h.Set("Content-Length", "3")
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Range", "bytes 0-2/3")
		h.Set("ETag", `"v1"`)
		h.Set("Last-Modified", "Mon, 07 Dec 2026 10:00:00 GMT")
		h.Set("Location", "/api/v1/orders/1")
		h.Set("Set-Cookie", "s=1")
		h.Set("Idempotent-Replayed", "true")
		h.Set("WWW-Authenticate", `Bearer realm="shop", error="invalid_token"`)
		h.Set("Vary", "Authorization")
		return fault.E(fault.Unauthenticated, fault.CodeUnauthenticated, "the token is not valid")
	}))
	defer srv.Close()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, readErr := io.ReadAll(res.Body)
	res.Body.Close()
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if res.StatusCode != 401 || readErr != nil || json.Unmarshal(b, &p) != nil || p.Status != 401 {
		t.Errorf("the error's answer: %d %q (read: %v), want a whole 401 problem", res.StatusCode, b, readErr)
	}
	for _, name := range []string{"Content-Encoding", "Content-Range", "ETag", "Last-Modified", "Location", "Set-Cookie", "Idempotent-Replayed"} {
		if v := res.Header.Get(name); v != "" {
			t.Errorf("the problem carries %s: %q", name, v)
		}
	}
	for name, want := range map[string]string{"WWW-Authenticate": `Bearer realm="shop", error="invalid_token"`,
		"Vary": "Authorization", "Content-Type": "application/problem+json"} {
		if v := res.Header.Get(name); v != want {
			t.Errorf("the problem's %s: %q, want %q", name, v, want)
		}
	}
}
