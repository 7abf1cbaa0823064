package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/tests/stack"
)

// TestReadyThroughTheGatewayMeansBuilt checks docs/local-runtime.md's
// "Readiness" through the local runtime, for a function of stack.yml and for
// a bundle of stack.ce.yml (ready when every member is built): a replica's
// fnserve ReadyPath is reachable through the gateway as
// /function/<name>/_/ready. The one serving get-product, whose catalog
// database does not exist (DATABASE_CREATE=false, so nothing creates it),
// answers it 503 with an unavailable problem that names no cause, and its
// calls through the edge 503 too, while the runtime keeps it in rotation;
// the one serving get-stock, which can be built, answers 200. Once the
// database is created, the same get-product process becomes ready (no
// restart) and serves its calls.
func TestReadyThroughTheGatewayMeansBuilt(t *testing.T) {
	for _, tc := range []struct {
		name, stackFile, kongFile string
		// unbuildable serves get-product (the catalog service), built get-stock.
		unbuildable, built string
	}{
		{name: "function", unbuildable: "get-product", built: "get-stock"},
		{name: "bundle", stackFile: "stack.ce.yml", kongFile: "gateway/kong.ce.yml", unbuildable: "catalog", built: "inventory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			catalogURL, createCatalog := pgtest.MissingDatabase(t)
			s := &shop{stack.Start(t, stack.Options{Functions: []string{tc.unbuildable, tc.built},
				StackFile: tc.stackFile, KongFile: tc.kongFile,
				Env: map[string]string{"CATALOG_DATABASE_URL": catalogURL, "DATABASE_CREATE": "false"}})}
			ready := func(fn string) string { return s.GatewayURL + "/function/" + fn + fnserve.ReadyPath }
			missing, err := url.Parse(catalogURL)
			if err != nil {
				t.Fatal(err)
			}
			// What the cause would name: the database, its host and port, the variable.
			cause := []string{strings.TrimPrefix(missing.Path, "/"), missing.Hostname(), missing.Port(), "postgres",
				"CATALOG_DATABASE_URL", "does not exist"}
			pids := replicaPIDs(t, s, tc.unbuildable)

			if a := getRaw(t, ready(tc.built)); a.status != http.StatusOK {
				t.Errorf("%s's readiness: %d %s, want 200", tc.built, a.status, a.body)
			}
			product := s.EdgeURL + "/api/v1/products/" + uuid.Must(uuid.NewV7()).String()
			for _, u := range []string{ready(tc.unbuildable), product} {
				getRaw(t, u).wantProblem(t, u, http.StatusServiceUnavailable, "unavailable", cause)
			}
			if !logsContain(t, s.Runtime, tc.unbuildable, "function not ready") {
				t.Errorf("%s logged no 'function not ready' line with the cause", tc.unbuildable)
			}

			createCatalog()
			waitFor(t, 20*time.Second, tc.unbuildable+" ready once its database exists", func() bool {
				return getRaw(t, ready(tc.unbuildable)).status == http.StatusOK
			})
			if code := call(t, http.MethodGet, product, "", nil, nil); code != http.StatusNotFound {
				t.Errorf("an unknown product once %s is built: %d, want 404", tc.unbuildable, code)
			}
			if after := replicaPIDs(t, s, tc.unbuildable); !slices.Equal(after, pids) {
				t.Errorf("%s's processes %v became %v: ready only after a restart", tc.unbuildable, pids, after)
			}
		})
	}
}

// answer is an HTTP answer with its body as it was sent.
type answer struct {
	status int
	header http.Header
	body   string
}

// getRaw sends GET url and reads the whole answer.
func getRaw(t *testing.T, url string) answer {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return answer{status: res.StatusCode, header: res.Header, body: string(b)}
}

// wantProblem fails the test unless a is a problem (RFC 9457) with status
// and code whose body names none of secret.
func (a answer) wantProblem(t *testing.T, what string, status int, code string, secret []string) {
	t.Helper()
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if a.status != status || a.header.Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal([]byte(a.body), &p) != nil || p.Status != status || p.Code != code {
		t.Errorf("%s: %d %s %s, want a %d %s problem", what, a.status, a.header.Get("Content-Type"), a.body, status, code)
	}
	for _, s := range secret {
		if s != "" && strings.Contains(strings.ToLower(a.body), strings.ToLower(s)) {
			t.Errorf("%s: the answer names %q: %s", what, s, a.body)
		}
	}
}

// replicaPIDs are the processes of fn's replicas, which fail the test
// unless each one is running.
func replicaPIDs(t *testing.T, s *shop, fn string) []int {
	t.Helper()
	var pids []int
	for _, r := range s.Replicas(fn) {
		if r.PID == 0 {
			t.Fatalf("%s's replica %s is not running", fn, r.Instance)
		}
		pids = append(pids, r.PID)
	}
	if len(pids) == 0 {
		t.Fatalf("%s has no replica", fn)
	}
	slices.Sort(pids)
	return pids
}
