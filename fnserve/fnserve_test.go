package fnserve_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/telemetry"
)

// server is a running fnserve.Run.
type server struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, valid once done is closed
}

// serve runs fnserve.Run on a free loopback port with env; the test's
// cleanup cancels it and waits for Run to return.
func serve(t *testing.T, env map[string]string, handle http.HandlerFunc) *server {
	t.Helper()
	build := func(*config.Reader, *slog.Logger) (http.Handler, error) { return handle, nil }
	return serveBuild(t, env, io.Discard, build)
}

// serveBuild is serve with the function's Build and the process's stdout
// (its log) given.
func serveBuild(t *testing.T, env map[string]string, stdout io.Writer, build fnhttp.Builder) *server {
	t.Helper()
	// No drain unless a test asks for one: cleanup cancels and waits.
	base := map[string]string{"PORT": "0", "OPENFAAS_NAME": "fixture", "healthcheck_interval": "0"}
	for k, v := range env {
		base[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(s.done)
		s.err = fnserve.Run(ctx, config.Env(base), stdout, build, func(a string) { addr <- a })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.done:
		t.Fatalf("Run: %v", s.err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run never became ready")
	}
	return s
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitDraining waits, 5 s at most, until the replica at url answers its
// health check with 503: Run's context has ended and it has begun to drain
// (having closed the service listener first), which it does on its own
// goroutine, so a test that cancels cannot assert on the next request.
func waitDraining(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := get(t, url+"/_/health"); code == http.StatusServiceUnavailable {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("replica never began to drain")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Run builds the function from its own environment on the first request,
// and builds it again after a failed build instead of keeping the error.
func TestRunBuildsFromItsEnvironment(t *testing.T) {
	dir := t.TempDir()
	var builds atomic.Int32
	done := make(chan struct{})
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	env := config.Env(map[string]string{"PORT": "0", "OPENFAAS_NAME": "fixture", "healthcheck_interval": "0",
		"FIXTURE_GREETING": "hello", config.SecretsDirEnv: dir})
	build := func(c *config.Reader, _ *slog.Logger) (http.Handler, error) {
		builds.Add(1)
		greeting, key := c.String("FIXTURE_GREETING", ""), c.Secret("fixture-key", "", false)
		if err := c.Err(); err != nil {
			return nil, err
		}
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, greeting+" "+key) }), nil
	}
	var err error
	go func() {
		defer close(done)
		err = fnserve.Run(ctx, env, io.Discard, build, func(a string) { ready <- a })
	}()
	defer func() { cancel(); <-done }()
	var url string
	select {
	case a := <-ready:
		url = "http://" + a
	case <-done:
		t.Fatalf("Run: %v", err)
	}
	if n := builds.Load(); n != 0 {
		t.Errorf("built %d times before any request, want 0", n)
	}
	if code, body := get(t, url+"/"); code != http.StatusServiceUnavailable || strings.Contains(body, "fixture-key") {
		t.Errorf("without the secret: %d %q, want a 503 that does not name it", code, body)
	}
	if err := os.WriteFile(filepath.Join(dir, "fixture-key"), []byte("k1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, url+"/"); code != http.StatusOK || body != "hello k1" {
		t.Errorf("with the secret: %d %q, want 200 \"hello k1\"", code, body)
	}
	get(t, url+"/")
	if n := builds.Load(); n != 2 {
		t.Errorf("built %d times, want 2 (one failure, then kept)", n)
	}
}

func TestServing(t *testing.T) {
	var deadline time.Duration
	var mu sync.Mutex
	url := serve(t, map[string]string{"exec_timeout": "7", "max_request_bytes": "100"},
		func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/panic":
				panic("kaboom secret-detail")
			case "/deadline":
				d, ok := r.Context().Deadline()
				mu.Lock()
				if ok {
					deadline = time.Until(d)
				}
				mu.Unlock()
			case "/body":
				// The handlers' decoder, whose own limit (64 KiB) is above
				// the process's cap.
				var v map[string]string
				if err := fnhttp.Decode(r, &v, 0); err != nil {
					fnhttp.WriteProblem(w, err)
					return
				}
			}
			_, _ = io.WriteString(w, "hello")
		}).url

	if code, body := get(t, url+"/_/health"); code != 200 || body != "OK" {
		t.Errorf("health: %d %q", code, body)
	}
	if code, body := get(t, url+"/hello"); code != 200 || body != "hello" {
		t.Errorf("hello: %d %q", code, body)
	}

	code, _ := get(t, url+"/deadline")
	mu.Lock()
	d := deadline
	mu.Unlock()
	if code != 200 || d <= 6*time.Second || d > 7*time.Second {
		t.Errorf("deadline seen by the handler: %v (status %d), want about exec_timeout=7s", d, code)
	}

	resp, err := http.Get(url + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(b, &p) != nil || p.Status != 500 || strings.Contains(string(b), "secret-detail") {
		t.Errorf("panic: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if code, _ := get(t, url+"/hello"); code != 200 {
		t.Errorf("after a panic the server answers %d", code)
	}

	// The text rule runs before every handler: a NUL or invalid UTF-8 in the
	// query is a 422 problem, in the path a 404 (it names nothing), never the
	// handler's business.
	for _, target := range []string{"/hello?q=%00", "/hello?q=%FF", "/hello?q=%C0%AF"} {
		if code, body := get(t, url+target); code != 422 || !strings.Contains(body, `"invalid_text"`) {
			t.Errorf("%s: %d %q, want 422 invalid_text", target, code, body)
		}
	}
	for _, target := range []string{"/hello/%00", "/hello/%FF"} {
		if code, body := get(t, url+target); code != 404 || !strings.Contains(body, `"not_found"`) {
			t.Errorf("%s: %d %q, want 404 not_found", target, code, body)
		}
	}

	for _, tc := range []struct {
		size int
		want int
	}{{100, 200}, {101, 413}} {
		body := `{"s":"` + strings.Repeat("x", tc.size-8) + `"}`
		resp, err := http.Post(url+"/body", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || tc.want == 413 && !strings.Contains(string(b), `"body_too_large"`) {
			t.Errorf("JSON body of %d bytes: %d %s, want %d", len(body), resp.StatusCode, b, tc.want)
		}
	}

	code, metrics := get(t, url+"/_/metrics")
	if code != 200 || !strings.Contains(metrics, `function_requests_total{code="200",function="fixture",method="get"}`) ||
		!strings.Contains(metrics, `function_requests_total{code="500",function="fixture",method="get"}`) {
		t.Errorf("metrics: %d, function_requests_total lines: %q", code, grep(metrics, "function_requests_total{"))
	}
}

func grep(s, sub string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	srv := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get(srv.url + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res <- result{code: resp.StatusCode, body: string(b)}
	}()
	<-started
	srv.cancel()
	select {
	case <-srv.done:
		t.Fatalf("Run returned (%v) while a request was in flight", srv.err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "finished" {
		t.Errorf("in-flight request: %+v", r)
	}
	select {
	case <-srv.done:
		if srv.err != nil {
			t.Errorf("Run = %v, want nil after a graceful shutdown", srv.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the last request")
	}
}

// TestDrainOnSIGTERM: once Run's context ends (SIGTERM), the health check
// answers 503 (within 5 s) while requests are still served for
// healthcheck_interval; only then does the port close.
func TestDrainOnSIGTERM(t *testing.T) {
	srv := serve(t, map[string]string{"healthcheck_interval": "1500ms"}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "served")
	})
	if code, _ := get(t, srv.url+"/_/health"); code != http.StatusOK {
		t.Fatalf("health before SIGTERM = %d", code)
	}
	stopped := time.Now()
	srv.cancel()
	waitDraining(t, srv.url)
	for time.Since(stopped) < time.Second {
		if code, body := get(t, srv.url+"/work"); code != http.StatusOK || body != "served" {
			t.Fatalf("request %s after SIGTERM = %d %q, want 200", time.Since(stopped), code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-srv.done:
		if srv.err != nil {
			t.Errorf("Run = %v", srv.err)
		}
		if d := time.Since(stopped); d < 1500*time.Millisecond {
			t.Errorf("Run returned %s after SIGTERM, before the 1.5s drain", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	if _, err := http.Get(srv.url + "/work"); err == nil {
		t.Error("port still open after the drain")
	}
}

// TestDrainAnswersConnectionClose: while draining, every answer carries
// Connection: close, so a client's kept-alive connection to the replica is
// closed after its next call instead of staying in the client's pool until
// Shutdown closes it under a call (issue 9).
func TestDrainAnswersConnectionClose(t *testing.T) {
	srv := serve(t, map[string]string{"healthcheck_interval": "1s"}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "served")
	})
	c := &http.Client{Transport: &http.Transport{}}
	call := func() (res *http.Response, reused bool) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.url+"/work", strings.NewReader("x"))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		}))
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res, reused
	}
	if res, _ := call(); res.Close {
		t.Fatal("Connection: close before SIGTERM")
	}
	srv.cancel()
	waitDraining(t, srv.url) // on a connection of its own: c's stays idle
	res, reused := call()
	if !reused {
		t.Error("the kept-alive connection was not reused for the first call of the drain")
	}
	if res.StatusCode != http.StatusOK || !res.Close {
		t.Errorf("answer while draining: %d, close %t, want 200 with Connection: close", res.StatusCode, res.Close)
	}
	if _, reused := call(); reused {
		t.Error("a connection answered with Connection: close was used again")
	}
	<-srv.done
}

// The margin after the drain interval is for of-watchdog's last request: a
// function behind it (upstream_url set, as the template's image sets it)
// gets it, one run without it (the local runtime, which takes a replica out
// of rotation before it signals it) does not, so that every local stop does
// not wait a second more (dev/chaos stops processes after 5 s).
func TestTheDrainMarginIsOnlyBehindTheWatchdog(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{map[string]string{"healthcheck_interval": "5s"}, 0},
		{map[string]string{"healthcheck_interval": "5s", "upstream_url": "http://127.0.0.1:8082"}, fnserve.DrainMargin},
	} {
		cfg, err := fnserve.LoadConfig(config.Env(c.env))
		if err != nil || cfg.DrainMargin != c.want || cfg.DrainInterval != 5*time.Second {
			t.Errorf("LoadConfig(%v): margin %s, drain %s (%v), want margin %s", c.env, cfg.DrainMargin, cfg.DrainInterval, err, c.want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	cfg, err := fnserve.LoadConfig(config.Env(map[string]string{"OPENFAAS_NAME": "f", "exec_timeout": "2m", "BIND_HOST": "0.0.0.0", "PORT": "9000"}))
	if err != nil || cfg.Addr != "0.0.0.0:9000" || cfg.ExecTimeout != 2*time.Minute || cfg.MaxRequestBytes != 1<<20 || cfg.Name != "f" ||
		cfg.DrainInterval != cfg.WriteTimeout {
		t.Errorf("LoadConfig = %+v, %v", cfg, err)
	}
	_, err = fnserve.LoadConfig(config.Env(map[string]string{"PORT": "x", "exec_timeout": "never", "LOG_LEVEL": "loud"}))
	for _, want := range []string{"PORT", "exec_timeout", "LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig error %v lacks %s", err, want)
		}
	}
}

// An answer a handler writes once its exec deadline has passed (after a
// rollback, say) reaches the caller: the write timeout is longer than the
// exec timeout, by default by fnserve.WriteGrace; a configuration with the
// two equal, which cut such answers off, is refused.
func TestAnAnswerAfterTheExecDeadlineIsDelivered(t *testing.T) {
	for _, env := range []map[string]string{
		{"exec_timeout": "300ms"},
		{"exec_timeout": "300ms", "write_timeout": "1s"},
	} {
		url := serve(t, env, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			time.Sleep(100 * time.Millisecond) // the rollback
			w.WriteHeader(http.StatusGatewayTimeout)
			_, _ = io.WriteString(w, "deadline passed")
		}).url
		resp, err := http.Get(url + "/slow")
		if err != nil {
			t.Fatalf("%v: %v, want the handler's 504", env, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusGatewayTimeout || string(b) != "deadline passed" {
			t.Errorf("%v: %d %q %v, want the handler's 504", env, resp.StatusCode, b, err)
		}
	}
	for _, env := range []map[string]string{
		{"exec_timeout": "30s", "write_timeout": "30s"},
		{"exec_timeout": "30", "write_timeout": "20s"},
	} {
		if _, err := fnserve.LoadConfig(config.Env(env)); err == nil || !strings.Contains(err.Error(), "write_timeout") {
			t.Errorf("LoadConfig(%v) = %v, want write_timeout refused", env, err)
		}
	}
	cfg, err := fnserve.LoadConfig(config.Env(map[string]string{"exec_timeout": "30s"}))
	if err != nil || cfg.WriteTimeout != 30*time.Second+fnserve.WriteGrace {
		t.Errorf("LoadConfig: write timeout %v, %v; want exec_timeout + %v", cfg.WriteTimeout, err, fnserve.WriteGrace)
	}
}

// TestCPUProfileOnlyWhenAsked: PPROF_CPU_DIR makes the chosen function write a
// CPU profile at shutdown; a function PPROF_FUNCTIONS does not name, or any
// function without PPROF_CPU_DIR, writes none.
func TestCPUProfileOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"not asked", map[string]string{}, 0},
		{"every function", map[string]string{"PPROF_CPU_DIR": "DIR"}, 1},
		{"chosen", map[string]string{"PPROF_CPU_DIR": "DIR", "PPROF_FUNCTIONS": "other,fixture"}, 1},
		{"another function chosen", map[string]string{"PPROF_CPU_DIR": "DIR", "PPROF_FUNCTIONS": "other"}, 0},
		{"a directory not made yet", map[string]string{"PPROF_CPU_DIR": "DIR/not/yet"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = strings.ReplaceAll(v, "DIR", dir)
			}
			srv := serve(t, env, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
			if code, _ := get(t, srv.url+"/"); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			srv.cancel()
			<-srv.done
			if srv.err != nil {
				t.Fatal(srv.err)
			}
			if d, ok := env["PPROF_CPU_DIR"]; ok {
				dir = d
			}
			files, _ := filepath.Glob(filepath.Join(dir, "fixture.*.pprof"))
			if len(files) != tc.want {
				t.Fatalf("profiles %v, want %d", files, tc.want)
			}
			for _, f := range files {
				// A pprof profile is a gzip-compressed protocol buffer.
				if raw, err := os.ReadFile(f); err != nil || len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
					t.Errorf("%s is not a pprof profile (%v)", f, err)
				}
			}
		})
	}
}

// TestCPUProfileWrittenBeforeTheDrain: the profile is complete as soon as
// the function is asked to stop, while it still drains — a supervisor that
// kills a draining function (the local runtime's tests wait 3s, the drain is
// 5s) still gets it.
func TestCPUProfileWrittenBeforeTheDrain(t *testing.T) {
	dir := t.TempDir()
	srv := serve(t, map[string]string{"PPROF_CPU_DIR": dir, "healthcheck_interval": "3s"},
		func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	if code, _ := get(t, srv.url+"/"); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	srv.cancel()
	deadline := time.Now().Add(2 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "fixture.*.pprof"))
		if len(files) == 1 {
			if raw, _ := os.ReadFile(files[0]); len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete profile 2s into a 3s drain: %v", files)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-srv.done:
		t.Fatal("Run returned before its drain ended; the test proves nothing")
	default:
	}
}

// TestMiddlewareIsCheapWithoutExporter: with no trace exporter configured,
// what every function wraps around its handler (tracing, request metrics,
// deadline, call id, text rule) costs a bounded number of allocations per
// request — no span attributes, metric attribute sets or per-request label
// maps that nothing reads — while the request still continues the caller's
// trace and is counted with promhttp's label values.
func TestMiddlewareIsCheapWithoutExporter(t *testing.T) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	shutdown, err := telemetry.Setup(t.Context(), "fixture", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	var seen trace.SpanContext
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/silent" {
			return // no WriteHeader, no body: counted as 200
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := fnserve.Handler(fnserve.Config{Name: "fixture", ExecTimeout: time.Minute, MaxRequestBytes: 1 << 20}, log, reg, bare)
	serve := func(h http.Handler, method, path string) func() {
		return func() {
			r := httptest.NewRequest(method, path, strings.NewReader(`{"a":1}`))
			r.Header.Set("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}

	serve(h, http.MethodPost, "/api/v1/orders")()
	if seen.TraceID().String() != traceID || seen.SpanID().String() == "b7ad6b7169203331" || !seen.IsSampled() {
		t.Errorf("handler's span context %v: want a child of the caller's span", seen)
	}
	serve(h, http.MethodGet, "/silent")()
	serve(h, "PROPFIND", "/x")()
	want := map[string]float64{"post/201": 1, "get/200": 1, "unknown/201": 1}
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "function_requests_total" && f.GetName() != "function_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			var method, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "method":
					method = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			n := m.GetCounter().GetValue()
			if f.GetName() == "function_request_duration_seconds" {
				if c := float64(m.GetHistogram().GetSampleCount()); c != want[method+"/"+code] {
					t.Errorf("duration %s/%s: %v observations", method, code, c)
				}
				continue
			}
			got[method+"/"+code] = n
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("function_requests_total (-want +got):\n%s", diff)
	}

	overhead := testing.AllocsPerRun(200, serve(h, http.MethodPost, "/api/v1/orders")) -
		testing.AllocsPerRun(200, serve(bare, http.MethodPost, "/api/v1/orders"))
	t.Logf("middleware: %.0f allocations per request", overhead)
	// 21 before the outer mux's matching was skipped for function calls
	// (callsFirst), the request metrics' children were kept and the trace
	// headers were read under their canonical names (telemetry's carrier).
	if overhead > 15 {
		t.Errorf("the middleware costs %.0f allocations per request, want at most 15", overhead)
	}

	// A read without a body (most calls: get-product, get-order, ...): 23
	// before, with a body limit around http.NoBody.
	get := func(h http.Handler) func() {
		return func() {
			r := httptest.NewRequest(http.MethodGet, "/api/v1/products/x", nil) // Body is http.NoBody, as a server's
			r.Header.Set("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	getOverhead := testing.AllocsPerRun(200, get(h)) - testing.AllocsPerRun(200, get(bare))
	t.Logf("middleware, a read without a body: %.0f allocations per request", getOverhead)
	if getOverhead > 14 {
		t.Errorf("the middleware costs %.0f allocations per read without a body, want at most 14", getOverhead)
	}
}

// BenchmarkMiddlewareRead is what every function wraps around its handler,
// without a trace exporter, for a read without a body that continues the
// caller's trace:
//
//	go test -run '^$' -bench MiddlewareRead -benchmem -count 5 ./fnserve
func BenchmarkMiddlewareRead(b *testing.B) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	b.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	shutdown, err := telemetry.Setup(b.Context(), "fixture", func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"ok":true}`) })
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := fnserve.Handler(fnserve.Config{Name: "fixture", ExecTimeout: time.Minute, MaxRequestBytes: 1 << 20}, log,
		prometheus.NewRegistry(), bare)
	r := httptest.NewRequest(http.MethodGet, "/api/v1/products/0b5e3c1a-8f0e-4a43-9a57-6f1f4f1d2b11", nil)
	r.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		w.Body.Reset()
		h.ServeHTTP(w, r)
	}
}

// An exec_timeout of 0 is refused: the request's deadline would be the
// moment it arrives, so every handler would find its context ended and
// answer 504 (of-watchdog reads 0 as "no timeout"; fnserve gives every
// request a deadline).
func TestAZeroExecTimeoutIsRefused(t *testing.T) {
	for _, env := range []map[string]string{
		{"exec_timeout": "0"},
		{"exec_timeout": "0s", "write_timeout": "10s"},
	} {
		if _, err := fnserve.LoadConfig(config.Env(env)); err == nil || !strings.Contains(err.Error(), "exec_timeout") {
			t.Errorf("LoadConfig(%v) = %v, want exec_timeout refused", env, err)
		}
	}
}

// A write_timeout of 0 is refused, as of-watchdog refuses it: the drain
// (healthcheck_interval defaults to it) and the wait for the requests in
// flight at shutdown are bounded by it, so with 0 a SIGTERM cut every
// request in flight at once.
func TestAZeroWriteTimeoutIsRefused(t *testing.T) {
	if _, err := fnserve.LoadConfig(config.Env(map[string]string{"write_timeout": "0"})); err == nil ||
		!strings.Contains(err.Error(), "write_timeout") {
		t.Errorf("LoadConfig(write_timeout=0) = %v, want write_timeout refused", err)
	}
}

// A handler that panics after it has begun its answer does not have a
// problem appended to what it wrote: the status is already sent, so the
// caller would take the 200 and its broken body for a success. The
// connection is cut instead (the caller sees an error), the panic is
// logged, and the process serves on.
func TestAPanicAfterTheAnswerBeganCutsIt(t *testing.T) {
	var log proctest.Output
	build := func(*config.Reader, *slog.Logger) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ok" {
				_, _ = io.WriteString(w, "fine")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"items":[`)
			panic("kaboom")
		}), nil
	}
	url := serveBuild(t, nil, &log, build).url
	if status, body, whole := getWhole(url + "/partial"); whole {
		t.Errorf("a panic after the answer began: %d %q, want the connection cut", status, body)
	}
	if code, body := get(t, url+"/ok"); code != http.StatusOK || body != "fine" {
		t.Errorf("after the panic: %d %q", code, body)
	}
	if !strings.Contains(log.String(), "handler panicked") {
		t.Errorf("no log line for the panic: %s", log.String())
	}
	if _, metrics := get(t, url+"/_/metrics"); !strings.Contains(metrics, `function_requests_total{code="500",function="fixture",method="get"} 1`) {
		t.Errorf("the cut request is not counted as a 500: %q", grep(metrics, "function_requests_total{"))
	}
}

// TestAHandlerAbortingItsAnswerIsCountedAs500 is the handler that panics
// with http.ErrAbortHandler itself: the connection is cut, and the request
// is counted as a 500, not as the 200 its status writer held.
func TestAHandlerAbortingItsAnswerIsCountedAs500(t *testing.T) {
	build := func(*config.Reader, *slog.Logger) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/before" {
				panic(http.ErrAbortHandler)
			}
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"items":[`)
			panic(http.ErrAbortHandler)
		}), nil
	}
	url := serveBuild(t, nil, io.Discard, build).url
	for _, path := range []string{"/before", "/after"} {
		if status, body, whole := getWhole(url + path); whole {
			t.Errorf("%s: aborted: %d %q, want the connection cut", path, status, body)
		}
	}
	if _, metrics := get(t, url+"/_/metrics"); !strings.Contains(metrics, `function_requests_total{code="500",function="fixture",method="get"} 2`) ||
		strings.Contains(metrics, `function_requests_total{code="200"`) {
		t.Errorf("the aborted requests are not counted as 500s: %q", grep(metrics, "function_requests_total{"))
	}
}

// A handler adapted by fnhttp.Adapt costs no allocation more than a plain
// one under fnserve: Adapt asks fnserve's writer whether the answer began
// (AnswerBegun) instead of wrapping it in a writer of its own to record it,
// which cost one allocation per request until 2026-12-07.
func TestAnAdaptedHandlerAllocatesNothingMoreUnderFnserve(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := fnserve.Config{Name: "fixture", ExecTimeout: time.Minute, MaxRequestBytes: 1 << 20}
	bare := fnserve.Handler(cfg, log, prometheus.NewRegistry(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	adapted := fnserve.Handler(cfg, log, prometheus.NewRegistry(), fnhttp.Adapt(log, func(w http.ResponseWriter, _ *http.Request) error {
		_, _ = io.WriteString(w, `{"ok":true}`)
		return nil
	}))
	serve := func(h http.Handler) func() {
		return func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil)) }
	}
	if extra := testing.AllocsPerRun(200, serve(adapted)) - testing.AllocsPerRun(200, serve(bare)); extra >= 1 {
		t.Errorf("fnhttp.Adapt costs %.0f allocations per request under fnserve, want none", extra)
	}
}

// Under fnserve, where fnhttp.Adapt asks fnserve's writer whether the answer
// began, an error after the answer began (a status, a byte of body, or a
// flush) still has the connection cut rather than a problem appended to it,
// and an error after an informational status alone (103 Early Hints) or
// after nothing is still answered as its problem.
func TestAnErrorAfterTheAnswerBeganCutsItUnderFnserve(t *testing.T) {
	build := func(*config.Reader, *slog.Logger) (http.Handler, error) {
		return fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error {
			switch r.URL.Path {
			case "/partial":
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, `{"items":[`)
			case "/flushed":
				_ = http.NewResponseController(w).Flush()
			case "/hints":
				w.Header().Set("Link", "</style.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
			}
			return fault.E(fault.Conflict, fault.CodeOutOfStock, "not enough stock")
		}), nil
	}
	url := serveBuild(t, nil, io.Discard, build).url
	for _, path := range []string{"/partial", "/flushed"} {
		if status, body, whole := getWhole(url + path); whole {
			t.Errorf("%s: an error after the answer began: %d %q, want the connection cut", path, status, body)
		}
	}
	for _, path := range []string{"/hints", "/refused"} {
		if code, body := get(t, url+path); code != http.StatusConflict || !strings.Contains(body, `"code":"out_of_stock"`) {
			t.Errorf("%s: %d %q, want 409 out_of_stock", path, code, body)
		}
	}
}

// A panic decides whether the answer began by the same rule as
// fnhttp.Adapt (AnswerBegun): after a flush alone the status is sent, so the
// connection is cut rather than a problem appended to the 200; after an
// informational status alone (103 Early Hints) nothing final was sent, so the
// caller gets the panic's 500 problem. A 103 followed by a 200 is counted as
// the 200 it was. Until 2026-12-07 the panic read the first status written:
// a flush alone had the problem appended, and a 103 alone was cut.
func TestAPanicReadsTheAnswerAsBegunByAdaptsRule(t *testing.T) {
	build := func(*config.Reader, *slog.Logger) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/flushed":
				_ = http.NewResponseController(w).Flush()
			case "/hints":
				w.Header().Set("Link", "</style.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
			case "/hinted-ok":
				w.WriteHeader(http.StatusEarlyHints)
				_, _ = io.WriteString(w, "fine")
				return
			}
			panic("kaboom")
		}), nil
	}
	url := serveBuild(t, nil, io.Discard, build).url
	if status, body, whole := getWhole(url + "/flushed"); whole {
		t.Errorf("a panic after a flush: %d %q, want the connection cut", status, body)
	}
	if code, body := get(t, url+"/hints"); code != http.StatusInternalServerError || !strings.Contains(body, `"code":"internal"`) {
		t.Errorf("a panic after a 103 alone: %d %q, want its 500 problem", code, body)
	}
	if code, body := get(t, url+"/hinted-ok"); code != http.StatusOK || body != "fine" {
		t.Errorf("a 103 then an answer: %d %q", code, body)
	}
	_, metrics := get(t, url+"/_/metrics")
	if !strings.Contains(metrics, `function_requests_total{code="200",function="fixture",method="get"} 1`) ||
		!strings.Contains(metrics, `function_requests_total{code="500",function="fixture",method="get"} 2`) ||
		strings.Contains(metrics, `code="103"`) {
		t.Errorf("counted as %q, want the 103-then-200 as a 200 and both panics as 500s", grep(metrics, "function_requests_total{"))
	}
}

// getWhole GETs url and reports whether a whole answer came (its status and
// body): false when the connection was cut, before the answer or within it.
func getWhole(url string) (status int, body []byte, whole bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, false
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err == nil
}

// of-watchdog gets SIGTERM when the function does (it forwards it at once)
// and routes to the function for the same healthcheck_interval; a request
// it accepted just before that interval ended reaches the function a moment
// after it. The function still accepts then: it closes its port only
// DrainMargin after the interval. Until 2026-12-07 it closed the port at the
// interval, and such a request found it closed (the watchdog's error for an
// answer).
func TestTheWatchdogsLastRequestFindsThePortOpen(t *testing.T) {
	// upstream_url: behind of-watchdog's http mode, as the template's
	// image runs the function. The interval leaves waitDraining a second
	// before the request is due, even on a loaded machine.
	const interval = time.Second
	srv := serve(t, map[string]string{"healthcheck_interval": interval.String(), "upstream_url": "http://127.0.0.1:8082"}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "served")
	})
	stopped := time.Now()
	srv.cancel()
	waitDraining(t, srv.url)
	// The watchdog's last request, forwarded just after its interval.
	due := stopped.Add(interval + fnserve.DrainMargin/2)
	if late := time.Since(due); late > 0 {
		t.Fatalf("the drain was seen only %s after the request was due: the machine is too slow for this test", late)
	}
	time.Sleep(time.Until(due))
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Post(srv.url+"/work", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("a request %s after SIGTERM (healthcheck_interval %s): %v, want it served", time.Since(stopped), interval, err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || string(b) != "served" {
		t.Errorf("a request %s after SIGTERM = %d %q, want 200", time.Since(stopped), res.StatusCode, b)
	}
	select {
	case <-srv.done:
		if d := time.Since(stopped); d < interval+fnserve.DrainMargin {
			t.Errorf("Run returned %s after SIGTERM, before healthcheck_interval + DrainMargin", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
}
