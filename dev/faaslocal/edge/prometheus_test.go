package edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPrometheusCountsEveryAnswer: with status_code_metrics the prometheus
// plugin counts each answer by service, route and code, also one another
// plugin gave (Kong's log phase runs whichever plugin answered), and
// Metrics serves the counter; without the flag nothing is counted.
func TestPrometheusCountsEveryAnswer(t *testing.T) {
	for _, statusCodes := range []bool{true, false} {
		up := upstream(t)
		flag := "false"
		if statusCodes {
			flag = "true"
		}
		e, srv := edgeOf(t, doc+`  - name: prometheus
    config: {status_code_metrics: `+flag+`}
`, up)
		for _, req := range []struct{ method, path, body string }{
			{http.MethodGet, "/api/x", ""},
			{http.MethodGet, "/api/y", ""},
			{http.MethodPost, "/strip/x", "more than ten bytes"}, // 413 from request-size-limiting
		} {
			r, _ := http.NewRequest(req.method, srv.URL+req.path, strings.NewReader(req.body))
			res, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
		}
		srv.Close()
		rec := httptest.NewRecorder()
		e.Metrics().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		want := []string{
			`kong_http_requests_total{code="200",consumer="",route="short-prefix",service="short-prefix",workspace="default"} 2`,
			`kong_http_requests_total{code="413",consumer="",route="stripped",service="stripped",workspace="default"} 1`,
		}
		for _, w := range want {
			if got := strings.Contains(string(body), w); got != statusCodes {
				t.Errorf("status_code_metrics %v: %q in the metrics is %v:\n%s", statusCodes, w, got, body)
			}
		}
		_ = e.Close()
	}
}
