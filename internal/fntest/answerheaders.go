package fntest

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"testing"
)

// AnswerHeaders are headers a handler sets for the answer it means to give,
// one of each that fnhttp.ForgetAnswer removes, keyed by canonical name:
// a problem that replaces that answer (an error's, a panic's 500) must carry
// none of them.
var AnswerHeaders = map[string]string{
	"Content-Length":      "3",
	"Content-Encoding":    "gzip",
	"Content-Range":       "bytes 0-2/3",
	"Content-Disposition": `attachment; filename="order.json"`,
	"Content-Language":    "de",
	"Content-Location":    "/api/v1/orders/1.json",
	"Etag":                `"v1"`,
	"Last-Modified":       "Mon, 07 Dec 2026 10:00:00 GMT",
	"Location":            "/api/v1/orders/1",
	"Set-Cookie":          "s=1",
	"Trailer":             "X-Checksum",
	"Idempotent-Replayed": "true",
}

// SetAnswerHeaders sets every AnswerHeaders on h, as a handler that meant
// to answer would.
func SetAnswerHeaders(h http.Header) {
	for name, v := range AnswerHeaders {
		h.Set(name, v)
	}
}

// GetProblem GETs url with compression off (a Content-Encoding left on the
// problem then reaches the test) and fails tb unless the answer is a whole
// problem of status: a Content-Length left from the answer it replaced cuts
// it short. It returns the answer, its body read.
func GetProblem(tb testing.TB, url string, status int) *http.Response {
	tb.Helper()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	b, readErr := io.ReadAll(res.Body)
	_ = res.Body.Close()
	var p struct {
		Status int `json:"status"`
	}
	if res.StatusCode != status || readErr != nil || json.Unmarshal(b, &p) != nil || p.Status != status {
		tb.Errorf("the answer: %d %q (read: %v), want a whole %d problem", res.StatusCode, b, readErr, status)
	}
	return res
}

// NoAnswerHeaders fails tb for each of AnswerHeaders that res, a problem,
// carries. Its Content-Length is the problem's own, which GetProblem
// checks by reading it whole; a Trailer is looked for among res's
// trailers, where the client moves it.
func NoAnswerHeaders(tb testing.TB, res *http.Response) {
	tb.Helper()
	for _, name := range slices.Sorted(maps.Keys(AnswerHeaders)) {
		switch name {
		case "Content-Length":
		case "Trailer":
			if len(res.Trailer) != 0 {
				tb.Errorf("the problem declares trailers %v", slices.Collect(maps.Keys(res.Trailer)))
			}
		default:
			if v := res.Header.Get(name); v != "" {
				tb.Errorf("the problem carries %s: %q", name, v)
			}
		}
	}
}

// Carries fails tb unless res has each header of want with its value.
func Carries(tb testing.TB, res *http.Response, want map[string]string) {
	tb.Helper()
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if v := res.Header.Get(name); v != want[name] {
			tb.Errorf("the problem's %s: %q, want %q", name, v, want[name])
		}
	}
}
