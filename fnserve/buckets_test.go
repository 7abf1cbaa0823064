package fnserve_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/fnserve"
)

// TestRequestDurationsAreBucketedUpToAndPastTheExecTimeout: with the
// exec_timeout of each deployed environment (env/production.yml,
// env/development.yml), function_request_duration_seconds keeps Prometheus's
// default buckets (the checkout latency SLO's rules read le="2.5") and
// adds bounds up to and past the timeout: a request of 12 s
// lands in a bucket of its own above 10 s, one cut at the deadline at the
// timeout, one that ends just after it (its 504 written once the context
// ended) under a finite bound, not in +Inf with everything slower than 10 s.
func TestRequestDurationsAreBucketedUpToAndPastTheExecTimeout(t *testing.T) {
	for _, file := range []string{"production.yml", "development.yml"} {
		t.Run(file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "env", file))
			if err != nil {
				t.Fatal(err)
			}
			var env struct {
				Environment map[string]string `yaml:"environment"`
			}
			if err := yaml.Unmarshal(raw, &env); err != nil {
				t.Fatal(err)
			}
			cfg, err := fnserve.LoadConfig(func(k string) string { return env.Environment[k] })
			if err != nil {
				t.Fatal(err)
			}
			exec := cfg.ExecTimeout.Seconds()
			if env.Environment["exec_timeout"] == "" || exec <= 10 {
				t.Fatalf("%s: exec_timeout %q: the test wants one beyond the default buckets' 10 s", file, env.Environment["exec_timeout"])
			}
			reg := prometheus.NewRegistry()
			h := fnserve.Handler(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), reg,
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			bounds := durationBounds(t, reg)

			for _, b := range prometheus.DefBuckets {
				if !slices.Contains(bounds, b) {
					t.Errorf("no bucket le=%v (a default one, which rules and dashboards may read); bounds %v", b, bounds)
				}
			}
			// The bucket a duration lands in is the first bound at or above it.
			in := func(d float64) float64 {
				i, _ := slices.BinarySearch(bounds, d)
				if i == len(bounds) {
					return -1 // +Inf
				}
				return bounds[i]
			}
			if b := in(12); b <= 10 || b > 15 {
				t.Errorf("a 12 s request lands in le=%v (-1: +Inf), want a bound above 10 and at most 15; bounds %v", b, bounds)
			}
			if b := in(exec); b != exec {
				t.Errorf("a request cut at exec_timeout (%v s) lands in le=%v, want le=%v; bounds %v", exec, b, exec, bounds)
			}
			if b := in(exec + 2); b < 0 {
				t.Errorf("a request ending 2 s past exec_timeout lands in +Inf; bounds %v", bounds)
			}
		})
	}
}

// durationBounds are the finite upper bounds of the one
// function_request_duration_seconds histogram reg holds, in order.
func durationBounds(t *testing.T, reg *prometheus.Registry) []float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "function_request_duration_seconds" || len(f.GetMetric()) == 0 {
			continue
		}
		var bounds []float64
		for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		return bounds
	}
	t.Fatal("no function_request_duration_seconds observed")
	return nil
}
