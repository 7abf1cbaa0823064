package load

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Below 1.024 ms every microsecond has its own bucket: quantiles are exact.
func TestQuantileExactRange(t *testing.T) {
	h := NewHistogram()
	for i := 1000; i >= 1; i-- { // order must not matter
		h.Record(time.Duration(i) * time.Microsecond)
	}
	got := map[float64]time.Duration{}
	for _, q := range []float64{0, 0.001, 0.5, 0.9, 0.99, 0.999, 1} {
		got[q] = h.Quantile(q)
	}
	want := map[float64]time.Duration{0: time.Microsecond, 0.001: time.Microsecond, 0.5: 500 * time.Microsecond,
		0.9: 900 * time.Microsecond, 0.99: 990 * time.Microsecond, 0.999: 999 * time.Microsecond, 1: time.Millisecond}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("quantiles (-want +got):\n%s", diff)
	}
	if h.Count() != 1000 || h.Min() != time.Microsecond || h.Max() != time.Millisecond {
		t.Errorf("count %d min %v max %v", h.Count(), h.Min(), h.Max())
	}
	if got, want := h.Mean(), 500500*time.Nanosecond; got != want {
		t.Errorf("mean %v, want %v", got, want)
	}
}

// Above that, a quantile is never below the true nearest-rank value and at
// most 0.2% above it, for values from microseconds to minutes.
func TestQuantileRelativeError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	var values []time.Duration
	for range 20000 {
		// log-uniform from 1µs to ~1000s
		v := time.Duration(float64(time.Microsecond) * math.Pow(10, rng.Float64()*9))
		values = append(values, v)
		h.Record(v)
	}
	slices.Sort(values)
	for _, q := range []float64{0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1} {
		rank := int(q*float64(len(values)) + 0.999999)
		exact := values[rank-1]
		got := h.Quantile(q)
		lo := exact.Truncate(time.Microsecond)
		hi := exact + exact/500 + time.Microsecond
		if got < lo || got > hi {
			t.Errorf("p%v = %v, exact %v (allowed %v..%v)", q*100, got, exact, lo, hi)
		}
	}
}

// Every bucket's upper bound maps back to that bucket, and the next value to
// the next bucket: buckets tile the range without gaps or overlaps.
func TestBucketsTile(t *testing.T) {
	n := len(NewHistogram().counts)
	for i := 0; i < n-1; i++ {
		u := upper(i)
		if index(u) != i || index(u+1) != i+1 {
			t.Fatalf("bucket %d: upper %d -> %d, upper+1 -> %d", i, u, index(u), index(u+1))
		}
	}
	if got := index(1 << 62); got != n-1 {
		t.Errorf("huge value in bucket %d, want the last (%d)", got, n-1)
	}
}

func TestMergeEqualsRecordingTogether(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 3000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	a.Merge(NewHistogram())
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q %v: merged %v, together %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != all.Count() || a.Mean() != all.Mean() || a.Min() != all.Min() || a.Max() != all.Max() {
		t.Errorf("merged %d/%v/%v/%v, together %d/%v/%v/%v", a.Count(), a.Mean(), a.Min(), a.Max(),
			all.Count(), all.Mean(), all.Min(), all.Max())
	}
}

func TestEmptyHistogram(t *testing.T) {
	h := NewHistogram()
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Errorf("empty: p50 %v mean %v count %d", h.Quantile(0.5), h.Mean(), h.Count())
	}
}

// A run with a request count sends exactly that many requests over all
// workers and counts every outcome by status, check failures apart.
func TestRunCountsOutcomes(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		switch {
		case r.URL.Query().Get("fail") == "1":
			w.WriteHeader(http.StatusConflict)
		case n%10 == 0:
			fmt.Fprint(w, "bad")
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		Workers:  4,
		Requests: 100,
		Request: func(_, n int) (*http.Request, error) {
			u := srv.URL
			if n%4 == 0 {
				u += "?fail=1"
			}
			return http.NewRequest(http.MethodGet, u, nil)
		},
		Check: func(res *http.Response, body []byte) error {
			if res.StatusCode == http.StatusOK && string(body) != "ok" {
				return fmt.Errorf("body %q", body)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 100 || hits.Load() != 100 || res.Latency.Count() != 100 {
		t.Fatalf("requests %d, server saw %d, latencies %d; want 100", res.Requests, hits.Load(), res.Latency.Count())
	}
	if res.Status[http.StatusConflict] != 25 || res.Status[http.StatusOK]+res.Status[StatusCheck] != 75 || res.Status[StatusCheck] == 0 {
		t.Errorf("status %s", res.StatusSummary())
	}
	if got := res.Errors(Success); got != 25+res.Status[StatusCheck] {
		t.Errorf("errors %d with %s", got, res.StatusSummary())
	}
	if res.RPS() <= 0 {
		t.Errorf("rps %v", res.RPS())
	}
}

// With Counted, Requests, Latency and RPS count only the outcomes it
// accepts (here the slow 201s, not the quick 409s); Status counts them all.
func TestRunCountsOnlyTheOutcomesItIsTold(t *testing.T) {
	const slow = 20 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("refuse") == "1" {
			w.WriteHeader(http.StatusConflict)
			return
		}
		time.Sleep(slow)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		Workers:  2,
		Requests: 40,
		Request: func(_, n int) (*http.Request, error) {
			u := srv.URL
			if n%2 == 0 {
				u += "?refuse=1"
			}
			return http.NewRequest(http.MethodPost, u, nil)
		},
		Counted: func(status int) bool { return status == http.StatusCreated },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status[http.StatusCreated] != 20 || res.Status[http.StatusConflict] != 20 {
		t.Fatalf("status %s, want 20 of each", res.StatusSummary())
	}
	if res.Requests != 20 || res.Latency.Count() != 20 {
		t.Errorf("requests %d, latencies %d; want the 20 created", res.Requests, res.Latency.Count())
	}
	if got := res.Latency.Min(); got < slow {
		t.Errorf("the quickest counted request took %v: a refusal (%v or more for a 201) was counted", got, slow)
	}
}

// A duration-bound run stops by itself, and a refused connection is a
// transport outcome, not an error of Run.
func TestRunStopsAfterDuration(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more
	begin := time.Now()
	res, err := Run(context.Background(), Config{Workers: 2, Duration: 200 * time.Millisecond,
		Request: func(_, _ int) (*http.Request, error) { return http.NewRequest(http.MethodGet, url, nil) }})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("run took %v", took)
	}
	if res.Requests == 0 || res.Status[StatusTransport] != res.Requests || res.FirstError == nil {
		t.Errorf("requests %d status %s first error %v", res.Requests, res.StatusSummary(), res.FirstError)
	}
}

func TestRunRefusesEndlessRun(t *testing.T) {
	_, err := Run(context.Background(), Config{Request: func(_, _ int) (*http.Request, error) { return nil, nil }})
	if err == nil {
		t.Fatal("a run with neither Duration nor Requests was accepted")
	}
}
