package provider

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// lookedUpFunction is oneFunction that counts its look-ups (Status) and
// scale requests, with an exec_timeout and, when idle is set, no replica.
type lookedUpFunction struct {
	oneFunction
	idle             bool
	statuses, scales *atomic.Int64
}

func (f lookedUpFunction) Status(name string) (types.FunctionStatus, error) {
	f.statuses.Add(1)
	st := types.FunctionStatus{Name: name, Replicas: 1, EnvVars: map[string]string{"exec_timeout": "30s"}}
	if f.idle {
		st.Replicas = 0
	}
	return st, nil
}

func (f lookedUpFunction) Wake(string, uint64) { f.scales.Add(1) }

// TestACallLooksItsFunctionUpOnce: scale from zero and the watchdog's
// timeout share one look-up of the function per call (it was one each: the
// function store's Status copies the function's description and counts its
// replicas under the supervisor's lock), and both still do their work: an
// idle function is scaled up, the call gets exec_timeout as its deadline,
// the answer its X-Duration-Seconds as of-watchdog writes it (%f).
func TestACallLooksItsFunctionUpOnce(t *testing.T) {
	replica := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	for _, idle := range []bool{false, true} {
		fn := lookedUpFunction{idle: idle, statuses: new(atomic.Int64), scales: new(atomic.Int64)}
		h := New(Deps{Functions: fn, Replicas: fixedReplicas(replica), ResolveWait: time.Second})
		gw := "http://" + serveLoopback(t, Guard(h.Router()))
		const calls = 5
		for range calls {
			res, err := http.Post(gw+"/function/fn/x", "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if d := res.Header.Get("X-Duration-Seconds"); !regexp.MustCompile(`^[0-9]+\.[0-9]{6}$`).MatchString(d) {
				t.Errorf("X-Duration-Seconds %q, want %%f's format", d)
			}
		}
		// exec_timeout (30s) shortened by X-Timeout: the watchdog's 504.
		req, _ := http.NewRequest(http.MethodPost, gw+"/function/fn/slow", nil)
		req.Header.Set("X-Timeout", "50ms")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusGatewayTimeout || res.Header.Get("X-OpenFaaS-Internal") != "of-watchdog" {
			t.Errorf("a call past its X-Timeout: %d %q, want 504 of-watchdog", res.StatusCode, res.Header.Get("X-OpenFaaS-Internal"))
		}
		if n := fn.statuses.Load(); n != calls+1 {
			t.Errorf("idle %v: %d look-ups of the function for %d calls, want one each", idle, n, calls+1)
		}
		if n, want := fn.scales.Load(), map[bool]int64{false: 0, true: calls + 1}[idle]; n != want {
			t.Errorf("idle %v: %d scale requests for %d calls, want %d", idle, n, calls+1, want)
		}
	}
}

// The watchdog's 504 reaches a client typed as faas-provider's proxy types
// every answer of of-watchdog, which writes its 504 with no Content-Type
// and no body: the request's Content-Type, else text/plain. Until
// 2026-12-07 the local 504 had no Content-Type at all.
func TestTheWatchdogs504IsTypedAsTheProviderTypesIt(t *testing.T) {
	replica := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // past any timeout: the gateway hangs up
	}))
	fn := lookedUpFunction{statuses: new(atomic.Int64), scales: new(atomic.Int64)}
	h := New(Deps{Functions: fn, Replicas: fixedReplicas(replica), ResolveWait: time.Second})
	gw := "http://" + serveLoopback(t, Guard(h.Router()))
	for _, tc := range []struct{ requestType, want string }{
		{"", "text/plain"},
		{"application/json", "application/json"},
	} {
		req, _ := http.NewRequest(http.MethodPost, gw+"/function/fn/slow", strings.NewReader("{}"))
		req.Header.Set("X-Timeout", "50ms")
		if tc.requestType != "" {
			req.Header.Set("Content-Type", tc.requestType)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusGatewayTimeout || len(b) != 0 {
			t.Fatalf("a call past its X-Timeout: %d %q, want 504 with no body", res.StatusCode, b)
		}
		if got := res.Header.Get("Content-Type"); got != tc.want {
			t.Errorf("request Content-Type %q: the 504's Content-Type %q, want %q", tc.requestType, got, tc.want)
		}
	}
}

// exec_timeout is read as of-watchdog reads it (config.New): unset, empty,
// or neither bare seconds (0 or more) nor a Go duration, it is the
// watchdog's default, 30 s; 0 or a negative duration is no timeout; and
// X-Timeout shortens the default as it shortens a value that was set.
// X-Timeout: 0s (or a negative duration) removes the deadline, as there
// (until 2026-12-07 it was ignored here). Until 2026-12-07 a function deployed without exec_timeout (faas-cli
// deploy --image … --fprocess …, no environment) had no watchdog deadline
// locally, where of-watchdog gives it 30 s.
func TestExecTimeoutIsReadAsOfWatchdogReadsIt(t *testing.T) {
	for _, tc := range []struct {
		env      map[string]string
		xTimeout string
		want     time.Duration
	}{
		{nil, "", 30 * time.Second},
		{map[string]string{"exec_timeout": ""}, "", 30 * time.Second},
		{map[string]string{"exec_timeout": "soon"}, "", 30 * time.Second},
		{map[string]string{"exec_timeout": "-5"}, "", 30 * time.Second},
		{map[string]string{"exec_timeout": "0"}, "", 0},
		{map[string]string{"exec_timeout": "-1s"}, "", 0},
		{map[string]string{"exec_timeout": "5"}, "", 5 * time.Second},
		{map[string]string{"exec_timeout": "2m"}, "", 2 * time.Minute},
		{nil, "1s", time.Second},
		{nil, "1m", 30 * time.Second},
		{map[string]string{"exec_timeout": "0"}, "1s", 0},
		// X-Timeout 0s, or a negative duration, is no deadline at all, as
		// of-watchdog's getTimeout takes any duration up to exec_timeout
		// and sets none when it is not positive.
		{map[string]string{"exec_timeout": "5"}, "0s", 0},
		{nil, "0s", 0},
		{nil, "-1s", 0},
		{map[string]string{"exec_timeout": "0"}, "0s", 0},
	} {
		st := types.FunctionStatus{Name: "fn", EnvVars: tc.env}
		if got := execTimeout(st, tc.xTimeout); got != tc.want {
			t.Errorf("exec_timeout %v, X-Timeout %q: %v, want %v", tc.env, tc.xTimeout, got, tc.want)
		}
	}
}
