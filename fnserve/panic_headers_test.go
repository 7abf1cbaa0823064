package fnserve_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// A handler that panics after it set the headers of the answer it meant to
// give (but before it began it) gets the 500 problem, readable: the headers
// that described that answer's body (its length, encoding, range, validator,
// location, cookies) are not sent with the problem. Until 2026-12-07 they
// were: a Content-Length cut the problem short, a Content-Encoding: gzip made
// it unreadable, an ETag or Set-Cookie went out with a 500.
func TestAPanicsProblemCarriesNoHeaderOfTheAnswerItReplaces(t *testing.T) {
	srv := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Length", "3")
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Range", "bytes 0-2/3")
		h.Set("ETag", `"v1"`)
		h.Set("Last-Modified", "Mon, 07 Dec 2026 10:00:00 GMT")
		h.Set("Location", "/api/v1/orders/1")
		h.Set("Set-Cookie", "s=1")
		h.Set("Idempotent-Replayed", "true")
		panic("kaboom")
	})
	tr := &http.Transport{DisableCompression: true}
	res, err := (&http.Client{Transport: tr}).Get(srv.url + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, readErr := io.ReadAll(res.Body)
	res.Body.Close()
	var p struct {
		Status int `json:"status"`
	}
	if res.StatusCode != 500 || readErr != nil || json.Unmarshal(b, &p) != nil || p.Status != 500 {
		t.Errorf("the panic's answer: %d %q (read: %v), want a whole 500 problem", res.StatusCode, b, readErr)
	}
	for _, name := range []string{"Content-Encoding", "Content-Range", "ETag", "Last-Modified", "Location", "Set-Cookie", "Idempotent-Replayed"} {
		if v := res.Header.Get(name); v != "" {
			t.Errorf("the panic's 500 carries %s: %q", name, v)
		}
	}
}
