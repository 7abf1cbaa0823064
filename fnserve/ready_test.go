package fnserve_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/proctest"
)

// getProblem GETs url and returns the status, the Content-Type and the
// problem's code and detail when the body is one.
func getProblem(t *testing.T, url string) (status int, contentType, code, body string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(b, &p)
	return res.StatusCode, res.Header.Get("Content-Type"), p.Code, string(b)
}

// The readiness path answers 200 only once the handler is built: while the
// build fails it tries it again at each check, as a request would, and
// answers 503 with a problem that names no cause (the cause is logged); the
// build that succeeds for the check is the one requests are then served
// with, and a request meanwhile is 503 as before.
func TestReadyOnlyOnceTheHandlerIsBuilt(t *testing.T) {
	const cause = "database down at secret-host-7"
	var builds atomic.Int32
	var up atomic.Bool
	build := func(*config.Reader, *slog.Logger) (http.Handler, error) {
		builds.Add(1)
		if !up.Load() {
			return nil, errors.New(cause)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "served") }), nil
	}
	var log proctest.Output
	srv := serveBuild(t, nil, &log, build)
	if n := builds.Load(); n != 0 {
		t.Fatalf("built %d times before any request or check, want 0", n)
	}

	status, ct, code, body := getProblem(t, srv.url+fnserve.ReadyPath)
	if status != http.StatusServiceUnavailable || ct != "application/problem+json" || code != "unavailable" {
		t.Errorf("ready while the build fails: %d %q code %q, want a 503 unavailable problem", status, ct, code)
	}
	if strings.Contains(body, "secret-host") {
		t.Errorf("the readiness answer leaks the build's cause: %s", body)
	}
	if !strings.Contains(log.String(), cause) {
		t.Errorf("the cause is not logged; log:\n%s", log.String())
	}
	if code, body := get(t, srv.url+"/work"); code != http.StatusServiceUnavailable || strings.Contains(body, "secret-host") {
		t.Errorf("a request while the build fails: %d %q, want a 503 that names no cause", code, body)
	}
	if status, _, _, _ := getProblem(t, srv.url+fnserve.ReadyPath); status != http.StatusServiceUnavailable {
		t.Errorf("ready again while the build fails: %d, want 503", status)
	}
	if n := builds.Load(); n != 3 {
		t.Errorf("built %d times for two checks and a request, want 3 (each tries once)", n)
	}

	up.Store(true)
	if code, body := get(t, srv.url+fnserve.ReadyPath); code != http.StatusOK || body != "OK" {
		t.Errorf("ready once the build succeeds: %d %q, want 200 OK", code, body)
	}
	if code, body := get(t, srv.url+"/work"); code != http.StatusOK || body != "served" {
		t.Errorf("a request after a successful check: %d %q, want 200 served", code, body)
	}
	get(t, srv.url+fnserve.ReadyPath)
	if n := builds.Load(); n != 4 {
		t.Errorf("built %d times, want 4: the check's build is kept for requests and later checks", n)
	}
}

// While the replica drains, the readiness path answers 503 (a problem), as
// /_/health does, though the handler is built and calls are still
// served.
func TestReadyFailsWhileDraining(t *testing.T) {
	srv := serve(t, map[string]string{"healthcheck_interval": "1500ms"}, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "served")
	})
	if code, _ := get(t, srv.url+fnserve.ReadyPath); code != http.StatusOK {
		t.Fatalf("ready before SIGTERM = %d, want 200", code)
	}
	srv.cancel()
	waitDraining(t, srv.url)
	status, ct, code, _ := getProblem(t, srv.url+fnserve.ReadyPath)
	if diff := cmp.Diff([]any{http.StatusServiceUnavailable, "application/problem+json", "unavailable"}, []any{status, ct, code}); diff != "" {
		t.Errorf("ready while draining (-want +got):\n%s", diff)
	}
	if code, body := get(t, srv.url+"/work"); code != http.StatusOK || body != "served" {
		t.Errorf("a call while draining = %d %q, want 200", code, body)
	}
	<-srv.done
}
