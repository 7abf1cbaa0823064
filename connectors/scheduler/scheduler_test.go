package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openfaas/faas-provider/types"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/telemetry"
)

const credential = "test-internal-credential"

// gateway is a test OpenFaaS gateway: /system/functions lists the functions
// with their annotations (faas-provider's types), /function/<name> counts
// invocations and can be held to simulate a slow run.
type gateway struct {
	*httptest.Server
	mu       sync.Mutex
	fns      map[string]map[string]string
	calls    map[string]int
	badCreds int
	traces   map[string]bool // trace ids seen in traceparent headers
	down     bool
	hold     chan struct{} // while non-nil, invocations wait for it to close
	redirect string        // when set, invocations are answered 307 to it
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{fns: map[string]map[string]string{}, calls: map[string]int{}, traces: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /system/functions", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.down {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		out := []types.FunctionStatus{}
		for name, ann := range g.fns {
			a := ann
			out = append(out, types.FunctionStatus{Name: name, Image: "img", Replicas: 1, Annotations: &a})
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("POST /function/{name}", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		if r.Header.Get("X-Internal-Token") != credential {
			g.badCreds++
		}
		if tp := strings.Split(r.Header.Get("traceparent"), "-"); len(tp) == 4 {
			g.traces[tp[1]] = true
		}
		g.calls[r.PathValue("name")]++
		hold, redirect := g.hold, g.redirect
		g.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if redirect != "" {
			http.Redirect(w, r, redirect, http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) set(name string, ann map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ann == nil {
		delete(g.fns, name)
		return
	}
	g.fns[name] = ann
}

func (g *gateway) counts() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.calls {
		out[k] = v
	}
	return out
}

func newScheduler(t *testing.T, g *gateway) *Scheduler {
	t.Helper()
	return newLoggingScheduler(t, g, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// newLoggingScheduler is a scheduler of g's functions logging to log.
func newLoggingScheduler(t *testing.T, g *gateway, log *slog.Logger) *Scheduler {
	t.Helper()
	s, err := New(Config{GatewayURL: g.URL, Credential: credential, InvokeTimeout: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runMinuteOne schedules g's functions with a scheduler logging to log and
// runs the tick of minute(1) until its invocations have ended.
func runMinuteOne(t *testing.T, g *gateway, log *slog.Logger) {
	t.Helper()
	s := newLoggingScheduler(t, g, log)
	ctx := context.Background()
	if err := s.Refresh(ctx, t0); err != nil {
		t.Fatal(err)
	}
	s.Tick(ctx, minute(1))
	s.Wait()
}

var t0 = time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)

func minute(n int) time.Time { return t0.Truncate(time.Minute).Add(time.Duration(n) * time.Minute) }

func TestInvokedOnSchedule(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	otel.SetTracerProvider(sdktrace.NewTracerProvider())
	ctx := context.Background()
	g := newGateway(t)
	g.set("sweep", map[string]string{"schedule": "*/1 * * * *"})
	g.set("hourly", map[string]string{"schedule": "0 * * * *", "topic": "cron-function"})
	g.set("listener", map[string]string{"schedule": "*/1 * * * *", "topic": "order.placed.v1"})
	g.set("plain", map[string]string{"topic": "order.placed.v1"})
	g.set("broken", map[string]string{"schedule": "every minute"})
	s := newScheduler(t, g)
	if err := s.Refresh(ctx, t0); err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"sweep": minute(1), "hourly": minute(60)}
	if diff := cmp.Diff(want, s.Scheduled()); diff != "" {
		t.Fatalf("scheduled (-want +got):\n%s", diff)
	}
	if got := s.Tick(ctx, t0.Add(10*time.Second)); len(got) != 0 {
		t.Errorf("ran before its time: %v", got)
	}
	for i := 1; i <= 3; i++ {
		s.Tick(ctx, minute(i))
		s.Wait()
	}
	// A tick that comes five minutes late runs once, not five times.
	s.Tick(ctx, minute(9))
	s.Wait()
	if diff := cmp.Diff(map[string]int{"sweep": 4}, g.counts()); diff != "" {
		t.Errorf("invocations (-want +got):\n%s", diff)
	}
	if g.badCreds != 0 {
		t.Errorf("%d invocations without the internal credential", g.badCreds)
	}
	if len(g.traces) != 4 {
		t.Errorf("%d distinct traces for 4 runs: each run must start its own trace and send traceparent", len(g.traces))
	}
}

// The expressions openfaas/cron-connector accepts (descriptors, @every, day
// and month names) are scheduled, in Config.Location (SCHEDULE_TZ); one it
// refuses is logged and ignored while the others run.
func TestCronConnectorExpressionsScheduledInTimeZone(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g := newGateway(t)
	g.set("every", map[string]string{"schedule": "@every 5m"})
	g.set("hourly", map[string]string{"schedule": "@hourly", "topic": "cron-function"})
	g.set("weekdays", map[string]string{"schedule": "0 9 * * MON-FRI"})
	g.set("sunday-seven", map[string]string{"schedule": "0 0 * * 7"}) // cron-connector refuses 7
	s, err := New(Config{GatewayURL: g.URL, Credential: credential, InvokeTimeout: 5 * time.Second, Location: paris},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 27, 9, 0, 30, 0, time.UTC) // Friday, 10:00:30 in Paris
	if err := s.Refresh(ctx, now); err != nil {
		t.Fatal(err)
	}
	monday9 := time.Date(2026, 3, 30, 9, 0, 0, 0, paris) // summer time since Sunday: 07:00 UTC
	want := map[string]time.Time{
		"every":    now.Add(5 * time.Minute),
		"hourly":   time.Date(2026, 3, 27, 11, 0, 0, 0, paris),
		"weekdays": monday9,
	}
	if diff := cmp.Diff(want, s.Scheduled()); diff != "" {
		t.Fatalf("scheduled (-want +got):\n%s", diff)
	}
	if got := s.Tick(ctx, monday9.UTC()); !slices.Contains(got, "weekdays") {
		t.Errorf("tick at Monday 09:00 Paris started %v", got)
	}
	s.Wait()
	if got, want := s.Scheduled()["weekdays"], time.Date(2026, 3, 31, 9, 0, 0, 0, paris); !got.Equal(want) {
		t.Errorf("after Monday's run, next %v, want %v", got, want)
	}
	if n := g.counts()["weekdays"]; n != 1 {
		t.Errorf("%d invocations of weekdays, want 1", n)
	}
}

// A run that outlasts the next tick is not overlapped: that tick is skipped.
// slowRunGoing is a scheduler whose function "slow", scheduled every
// minute, has a run going (held by its gateway until release) since the
// tick of minute(1).
func slowRunGoing(t *testing.T) (*gateway, *Scheduler) {
	t.Helper()
	ctx := context.Background()
	g := newGateway(t)
	g.set("slow", map[string]string{"schedule": "* * * * *"})
	g.hold = make(chan struct{})
	s := newScheduler(t, g)
	if err := s.Refresh(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if got := s.Tick(ctx, minute(1)); len(got) != 1 {
		t.Fatalf("first tick started %v", got)
	}
	waitFor(t, func() bool { return g.counts()["slow"] == 1 })
	return g, s
}

// release lets the held invocations answer.
func (g *gateway) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.hold)
	g.hold = nil
}

// A tick that finds the function's previous run still going starts none,
// also when the function dropped out of one listing meanwhile and came back
// (faasd redeploys by removing and creating it; helper-138: a new entry
// forgot the run); the tick after the run ended starts one.
func TestSlowRunNotOverlapped(t *testing.T) {
	for _, relisted := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "relisted while running"}[relisted], func(t *testing.T) {
			ctx := context.Background()
			g, s := slowRunGoing(t)
			if relisted {
				g.set("slow", nil)
				if err := s.Refresh(ctx, minute(1)); err != nil {
					t.Fatal(err)
				}
				g.set("slow", map[string]string{"schedule": "* * * * *"})
				if err := s.Refresh(ctx, minute(1)); err != nil {
					t.Fatal(err)
				}
			}
			if got := s.Tick(ctx, minute(2)); len(got) != 0 {
				t.Errorf("second tick overlapped the running call: %v", got)
			}
			g.release()
			s.Wait()
			if got := s.Tick(ctx, minute(3)); len(got) != 1 {
				t.Errorf("third tick after the run ended started %v", got)
			}
			s.Wait()
			if n := g.counts()["slow"]; n != 2 {
				t.Errorf("%d invocations, want 2", n)
			}
		})
	}
}

// An annotation change is picked up at the next refresh; a failed refresh
// keeps the last schedules; a removed annotation stops the invocations.
func TestAnnotationChanges(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t)
	g.set("job", map[string]string{"schedule": "*/1 * * * *"})
	s := newScheduler(t, g)
	if err := s.Refresh(ctx, t0); err != nil {
		t.Fatal(err)
	}
	g.set("job", map[string]string{"schedule": "30 * * * *"})
	if err := s.Refresh(ctx, minute(1)); err != nil {
		t.Fatal(err)
	}
	if got := s.Scheduled()["job"]; !got.Equal(minute(30)) {
		t.Fatalf("next run %v after the change, want %v", got, minute(30))
	}
	if got := s.Tick(ctx, minute(2)); len(got) != 0 {
		t.Errorf("old schedule still used: %v", got)
	}
	g.mu.Lock()
	g.down = true
	g.mu.Unlock()
	if err := s.Refresh(ctx, minute(3)); err == nil {
		t.Error("refresh against a failing gateway reported success")
	}
	if _, ok := s.Scheduled()["job"]; !ok {
		t.Fatal("a failed refresh dropped the schedules")
	}
	if got := s.Tick(ctx, minute(30)); len(got) != 1 {
		t.Errorf("tick at the new time started %v", got)
	}
	s.Wait()
	g.mu.Lock()
	g.down = false
	g.mu.Unlock()
	g.set("job", map[string]string{})
	if err := s.Refresh(ctx, minute(31)); err != nil {
		t.Fatal(err)
	}
	if got := s.Tick(ctx, minute(90)); len(got) != 0 || len(s.Scheduled()) != 0 {
		t.Errorf("unscheduled function still runs: %v %v", got, s.Scheduled())
	}
	if n := g.counts()["job"]; n != 1 {
		t.Errorf("%d invocations, want 1", n)
	}
}

// Run drives refreshes and ticks from its channels and survives a gateway
// outage.
func TestRun(t *testing.T) {
	g := newGateway(t)
	g.down = true
	g.set("job", map[string]string{"schedule": "* * * * *"})
	s := newScheduler(t, g)
	ticks, refresh := make(chan time.Time), make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, ticks, refresh); close(done) }()
	now := time.Now()
	ticks <- now.Add(2 * time.Minute) // nothing known yet: the gateway was down
	g.mu.Lock()
	g.down = false
	g.mu.Unlock()
	refresh <- now
	ticks <- now.Add(2 * time.Minute)
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not stop")
	}
	if n := g.counts()["job"]; n != 1 {
		t.Errorf("%d invocations, want 1", n)
	}
}

// A scheduled invocation follows no redirect: a 307 re-sent the POST with
// X-Internal-Token to whatever host Location named (net/http strips only
// Authorization and Cookie across hosts). The 3xx is logged as a refusal.
func TestARedirectIsNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var elsewhere []http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhere = append(elsewhere, r.Header.Clone())
		mu.Unlock()
	}))
	t.Cleanup(other.Close)
	g := newGateway(t)
	g.redirect = other.URL + "/function/sweep"
	g.set("sweep", map[string]string{"schedule": "*/1 * * * *"})
	var buf bytes.Buffer
	runMinuteOne(t, g, slog.New(slog.NewTextHandler(&buf, nil)))
	mu.Lock()
	defer mu.Unlock()
	for _, h := range elsewhere {
		if tok := h.Get("X-Internal-Token"); tok != "" {
			t.Errorf("the internal credential reached the redirect's host: %q", tok)
		}
	}
	if len(elsewhere) != 0 {
		t.Errorf("%d request(s) followed the redirect, want none", len(elsewhere))
	}
	if !strings.Contains(buf.String(), "scheduled invocation refused") || !strings.Contains(buf.String(), "status=307") {
		t.Errorf("the 307 was not logged as a refusal:\n%s", buf.String())
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{GatewayURL: "gateway:8080"}, slog.Default()); err == nil {
		t.Error("a URL without scheme and a missing credential were accepted")
	}
	err := run(context.Background(), func(k string) string { return map[string]string{"SECRETS_DIR": t.TempDir()}[k] })
	if err == nil {
		t.Error("run started without GATEWAY_URL and internal-token")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Every line the scheduler logs names each key once: its own name is the
// logger's "function" (telemetry.NewLogger), the function it runs is
// "target". A line with two "function" keys read as either, depending on the
// log pipeline.
func TestLogLinesNameEachKeyOnce(t *testing.T) {
	var buf bytes.Buffer
	g := newGateway(t)
	g.set("sweep", map[string]string{"schedule": "*/1 * * * *"})
	g.set("broken", map[string]string{"schedule": "every minute"})
	runMinuteOne(t, g, telemetry.NewLogger(&buf, "scheduler", slog.LevelDebug))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("%d lines logged, want the schedule, the refusal and the run:\n%s", len(lines), buf.String())
	}
	for _, line := range lines {
		dec := json.NewDecoder(strings.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("not a JSON object: %s", line)
		}
		seen := map[string]bool{}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			if seen[key.(string)] {
				t.Errorf("key %q twice in %s", key, line)
			}
			seen[key.(string)] = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
		}
	}
}

// A run's span says how the run went: a function that answers an error
// (here 503) or no answer at all fails its run's span, with the status code
// when there is one, as the relay's and the connector's spans do; a 2xx
// leaves it unset.
func TestAFailedRunFailsItsSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(sdktrace.NewTracerProvider()) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /system/functions", func(w http.ResponseWriter, r *http.Request) {
		every := map[string]string{"schedule": "* * * * *"}
		_ = json.NewEncoder(w).Encode([]types.FunctionStatus{{Name: "fine", Annotations: &every},
			{Name: "broken", Annotations: &every}, {Name: "gone", Annotations: &every}})
	})
	mux.HandleFunc("POST /function/fine", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /function/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("POST /function/gone", func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler) // the connection is cut: no answer
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s, err := New(Config{GatewayURL: srv.URL, Credential: credential, InvokeTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Refresh(ctx, t0); err != nil {
		t.Fatal(err)
	}
	s.Tick(ctx, minute(1))
	s.Wait()
	type got struct {
		Status codes.Code
		Code   int64
	}
	spans := map[string]got{}
	for _, sp := range rec.Ended() {
		var code int64
		for _, a := range sp.Attributes() {
			if a.Key == "http.response.status_code" {
				code = a.Value.AsInt64()
			}
		}
		spans[sp.Name()] = got{sp.Status().Code, code}
	}
	want := map[string]got{
		"schedule fine":   {codes.Unset, 200},
		"schedule broken": {codes.Error, 503},
		"schedule gone":   {codes.Error, 0},
	}
	if diff := cmp.Diff(want, spans); diff != "" {
		t.Errorf("run spans (-want +got):\n%s", diff)
	}
}

// A run's lines carry the trace_id of its trace, the one its traceparent
// carries into the function: a refused or failed run's line (the runbooks'
// first stop when RecoveryStalled or ReservationSweepStalled fires) leads
// to the function's lines and spans of that same run. Until 2026-12-07 the
// lines were logged without the run's context and named no trace.
func TestARunsLinesCarryItsTraceID(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	otel.SetTracerProvider(sdktrace.NewTracerProvider())
	var mu sync.Mutex
	sent := map[string]string{} // function -> trace id of the traceparent it got
	seen := func(name string, r *http.Request) {
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
		mu.Lock()
		defer mu.Unlock()
		if sc.IsValid() {
			sent[name] = sc.TraceID().String()
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /system/functions", func(w http.ResponseWriter, r *http.Request) {
		every := map[string]string{"schedule": "* * * * *"}
		_ = json.NewEncoder(w).Encode([]types.FunctionStatus{{Name: "fine", Annotations: &every},
			{Name: "broken", Annotations: &every}, {Name: "gone", Annotations: &every}})
	})
	mux.HandleFunc("POST /function/fine", func(w http.ResponseWriter, r *http.Request) { seen("fine", r) })
	mux.HandleFunc("POST /function/broken", func(w http.ResponseWriter, r *http.Request) {
		seen("broken", r)
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("POST /function/gone", func(w http.ResponseWriter, r *http.Request) {
		seen("gone", r)
		panic(http.ErrAbortHandler) // the connection is cut: no answer
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var buf bytes.Buffer
	s, err := New(Config{GatewayURL: srv.URL, Credential: credential, InvokeTimeout: 5 * time.Second},
		telemetry.NewLogger(&buf, "scheduler", slog.LevelDebug))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Refresh(ctx, t0); err != nil {
		t.Fatal(err)
	}
	s.Tick(ctx, minute(1))
	s.Wait()
	type line struct{ Msg, TraceID string }
	got := map[string]line{}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct {
			Msg     string `json:"msg"`
			Target  string `json:"target"`
			TraceID string `json:"trace_id"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		if strings.HasPrefix(rec.Msg, "scheduled invocation") {
			got[rec.Target] = line{rec.Msg, rec.TraceID}
		}
	}
	mu.Lock()
	want := map[string]line{
		"fine":   {"scheduled invocation done", sent["fine"]},
		"broken": {"scheduled invocation refused", sent["broken"]},
		"gone":   {"scheduled invocation failed", sent["gone"]},
	}
	mu.Unlock()
	for name, l := range want {
		if l.TraceID == "" {
			t.Fatalf("%s got no traceparent", name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("each run's line and trace id (-want +got):\n%s", diff)
	}
}
