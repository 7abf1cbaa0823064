// Package fnserve serves one function over HTTP from its Build (the
// constructor every function package exports, fnhttp.Builder). It is the
// single serving path: the OpenFaaS template's main.go calls Main(function.Build)
// inside the image (behind of-watchdog in mode=http), and the local
// multi-call binary calls Run for the function it was started as. The handler
// is built on the first request, from a fresh reading of the environment, and
// built again on the next request when that failed (503 meanwhile). ReadyPath
// (/_/ready) tells whether it is built, building it if need be: of-watchdog
// forwards its own /_/ready there (ready_path in stack.yml), so a replica
// whose handler cannot be built is not Ready where the platform probes that
// path. It lives outside internal/ because the template's own module imports it.
//
// Configuration uses the watchdog's variable names, read from an injected
// environment: read_timeout, write_timeout, exec_timeout (bare seconds or Go
// durations), max_request_bytes, healthcheck_interval, plus PORT (default 8082, the watchdog's
// upstream) and BIND_HOST (default 127.0.0.1). SERVICE_ADDR, which only the
// local runtime sets, adds a listener that every replica of the function
// shares (see Config.ServiceAddr); LOOPBACK_HOST_ONLY, which only the local
// runtime sets too, refuses requests whose Host is not a loopback name (see
// Config.LoopbackHostOnly).
//
// Profiling, only when asked for: with PPROF_CPU_DIR set, the process writes
// a pprof CPU profile of its whole life to PPROF_CPU_DIR/<name>.<pid>.pprof
// when it shuts down; PPROF_FUNCTIONS (comma-separated names, default every
// function) chooses which functions do. No profiling endpoint is opened.
package fnserve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/loopback"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Config is the serving configuration of one function process.
type Config struct {
	// Name is the function's name, for logs, traces and metrics
	// (OPENFAAS_NAME, else the host name as on faasd).
	Name string
	// Addr is the listen address, BIND_HOST:PORT (default 127.0.0.1:8082).
	Addr string
	// ReadTimeout bounds reading a request (read_timeout, default 10s).
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of a request's headers to
	// the end of its response (write_timeout, default ExecTimeout +
	// WriteGrace). It must exceed ExecTimeout, which starts at about the
	// same moment: with the two equal an answer written at the exec deadline
	// (the 504 a handler writes once its context ends, after a rollback) is
	// cut off and the caller sees a closed connection instead. It also
	// bounds the wait for the requests in flight at shutdown; 0 is refused,
	// as of-watchdog refuses it.
	WriteTimeout time.Duration
	// ExecTimeout is the deadline of the request's context (exec_timeout,
	// default 30s); handlers see it as ctx.Done(). 0, which of-watchdog
	// reads as no timeout, is refused.
	ExecTimeout time.Duration
	// MaxRequestBytes caps any request body (max_request_bytes, default 1 MiB);
	// handlers decode JSON with their own, smaller limit.
	MaxRequestBytes int64
	// LogLevel is debug, info, warn or error (LOG_LEVEL, default info).
	LogLevel slog.Level
	// DrainInterval is how long the function keeps serving after SIGTERM
	// while /_/health answers 503 (healthcheck_interval, default the write
	// timeout, as in OpenFaaS's golang-middleware template; 0 stops at once),
	// plus DrainMargin. of-watchdog waits the same interval before it stops
	// forwarding, and a
	// load balancer or the local runtime takes the replica out of rotation on
	// the 503, so no request finds the port closed.
	DrainInterval time.Duration
	// DrainMargin is added to DrainInterval behind of-watchdog only
	// (upstream_url set, as the shop-go template's image sets it: the
	// watchdog's http mode): DrainMargin there, 0 elsewhere (the local
	// runtime runs no watchdog and takes a replica out of rotation before
	// it signals it, so a margin would only delay each stop).
	DrainMargin time.Duration
	// ServiceAddr, when not empty (SERVICE_ADDR, host:port), is a second
	// address the function serves on, with the same server and handler,
	// bound with SO_REUSEPORT: every replica of the function listens on it
	// and the kernel spreads new connections among them, as a Kubernetes
	// Service spreads them among a function's pods. The local runtime sets
	// it so that functions call each other directly (FUNCTION_URLS) rather
	// than through its gateway; production never sets it (of-watchdog is in
	// front there). When the drain begins it is closed first: new
	// connections go to the other replicas, or are refused when none is
	// left, and the caller falls back to the gateway. Linux only: elsewhere
	// a set SERVICE_ADDR is a configuration error.
	ServiceAddr string
	// LoopbackHostOnly (LOOPBACK_HOST_ONLY, default false) answers 421
	// Misdirected Request to every request whose Host is not a loopback
	// name or address, on both listeners (loopback.Only). The local runtime
	// sets it: its functions listen on loopback ports a DNS-rebinding web
	// page could otherwise reach under its own name (and, at login-user's,
	// log in with the development admin's password). Production never sets
	// it: of-watchdog passes the client's Host through.
	LoopbackHostOnly bool
	// CPUProfile, when not empty, is the file the process writes its CPU
	// profile to at shutdown (PPROF_CPU_DIR/<name>.<pid>.pprof, when
	// PPROF_FUNCTIONS is empty or names this function).
	CPUProfile string
}

// ReadyPath is the function's readiness path: GET answers 200 once the
// handler is built (trying the build when it is not, as a request would),
// else 503 with a problem body that names no cause (the cause is logged),
// and 503 while the replica drains. It is the path of of-watchdog's own
// readiness endpoint too, which forwards there when stack.yml sets
// ready_path to it, so one path means the same through the watchdog's port
// and on the function's own (the local runtime's).
const ReadyPath = "/_/ready"

// DrainMargin is how much longer than DrainInterval the function keeps
// accepting after SIGTERM behind of-watchdog (when DrainInterval is not 0;
// Config.DrainMargin). of-watchdog gets the
// same SIGTERM at the same moment, forwards it at once and routes to the
// function for the same healthcheck_interval: with the two intervals equal,
// a request the watchdog accepted just before its own interval ended reached
// a port the function had just closed, and the caller got the watchdog's
// error instead of the answer. The margin covers the watchdog's last
// accepted request reaching the function; it delays the exit by as much.
const DrainMargin = time.Second

// WriteGrace is how much longer than exec_timeout the default write_timeout
// is: time for the answer a handler writes once its deadline has passed
// (env/*.yml set the same margin, and dev/deploycheck checks that every
// timeout after the function's is longer still).
const WriteGrace = 2 * time.Second

// LoadConfig reads Config from getenv, reporting every problem at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := config.New(getenv)
	name := c.String("OPENFAAS_NAME", "")
	if name == "" {
		name, _ = os.Hostname()
	}
	cfg := Config{
		Name:            name,
		Addr:            net.JoinHostPort(c.String("BIND_HOST", "127.0.0.1"), strconv.Itoa(c.Int("PORT", 8082, 0, 65535))),
		ReadTimeout:     c.Duration("read_timeout", 10*time.Second),
		ExecTimeout:     c.Duration("exec_timeout", 30*time.Second),
		MaxRequestBytes: int64(c.Int("max_request_bytes", 1<<20, 1, 1<<30)),
	}
	cfg.LoopbackHostOnly = c.Bool("LOOPBACK_HOST_ONLY", false)
	cfg.WriteTimeout = c.Duration("write_timeout", cfg.ExecTimeout+WriteGrace)
	cfg.DrainInterval = c.Duration("healthcheck_interval", cfg.WriteTimeout)
	if c.String("upstream_url", "") != "" {
		cfg.DrainMargin = DrainMargin
	}
	var errs []error
	if cfg.ExecTimeout == 0 {
		// of-watchdog reads 0 as no timeout; here it would be a deadline
		// at the request's arrival, every handler's context already ended.
		errs = append(errs, errors.New("exec_timeout must be more than 0: it is every request's deadline"))
	}
	if cfg.WriteTimeout == 0 {
		// As of-watchdog refuses it: the shutdown's wait for the requests
		// in flight is bounded by it, and with 0 a SIGTERM cut them all.
		errs = append(errs, errors.New("write_timeout must be more than 0: it bounds the wait for the requests in flight at shutdown"))
	} else if cfg.WriteTimeout <= cfg.ExecTimeout {
		errs = append(errs, fmt.Errorf("write_timeout %s must exceed exec_timeout %s (by %s or so), "+
			"or an answer written at the exec deadline is cut off", cfg.WriteTimeout, cfg.ExecTimeout, WriteGrace))
	}
	if cfg.ServiceAddr = c.String("SERVICE_ADDR", ""); cfg.ServiceAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.ServiceAddr); err != nil {
			errs = append(errs, fmt.Errorf("SERVICE_ADDR: %w", err))
		} else if !reusePortSupported {
			errs = append(errs, fmt.Errorf("SERVICE_ADDR %q: a listener shared by replicas needs SO_REUSEPORT, "+
				"which only the Linux build has; unset it", cfg.ServiceAddr))
		}
	}
	cfg.CPUProfile = telemetry.CPUProfilePath(c.String("PPROF_CPU_DIR", ""), c.String("PPROF_FUNCTIONS", ""), name)
	if err := cfg.LogLevel.UnmarshalText([]byte(c.String("LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %w", err))
	}
	return cfg, errors.Join(append([]error{c.Err()}, errs...)...)
}

// Main is the template's entry point: it serves the function that build
// builds (its package's Build) until SIGTERM or SIGINT (SignalContext) and
// exits non-zero when serving fails.
func Main(build fnhttp.Builder) {
	ctx, stop := SignalContext()
	defer stop()
	if err := Run(ctx, os.Getenv, os.Stdout, build, nil); err != nil {
		fmt.Fprintln(os.Stderr, "fatal:", err)
		os.Exit(1)
	}
}

// SignalContext is the context a function process serves under, the one
// way every function binary (the template's Main, cmd/shop-functions, the
// local runtime's echofn) catches its signals: it is done at the first
// SIGTERM or SIGINT, which begins Run's graceful drain. From then on SIGINT
// is no longer caught, so an operator's second Ctrl-C ends the process at
// once, as it ends most Go servers; SIGTERM stays caught for the whole
// drain, because a function gets it twice at once where it runs: faasd
// stops a container by signalling every process in it, and of-watchdog
// forwards its own SIGTERM to the function. stop ends ctx but keeps SIGTERM
// caught: the process is about to exit, and a second SIGTERM landing between
// Run's return and the exit would otherwise end it with a signal's status
// (143) instead of its own.
func SignalContext() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
			return
		}
		// Reset before the drain begins, not at some moment after it: a
		// second Ctrl-C is never swallowed. Later SIGTERMs land in sig,
		// which nobody reads any more (a full channel drops them).
		signal.Reset(os.Interrupt)
		cancel()
	}()
	return ctx, cancel
}

// Run serves the function that build builds until ctx is done, then drains: it
// closes the shared ServiceAddr listener, if any, at once; then for DrainInterval
// (+ DrainMargin) /_/health answers 503 while every other request is still served (each answer
// with Connection: close, so clients reconnect elsewhere; idle connections are
// not closed under a client that may be sending on them), then it stops accepting and waits for
// the requests in flight within the write timeout. ready, when not nil, receives the bound address once the
// listeners are open (PORT=0 picks a free port): its own, never ServiceAddr. build gets the process's
// logger and a config.Reader over getenv, on the first request or readiness
// check and again after a failed build (fnhttp.Lazy); ReadyPath answers 503
// until it succeeds, and while draining.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer, build fnhttp.Builder, ready func(addr string)) error {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := telemetry.NewLogger(stdout, cfg.Name, cfg.LogLevel)
	slog.SetDefault(log)
	// The profile is written as soon as the process is asked to stop, before
	// the drain: a supervisor may kill a draining process (the local
	// runtime's tests give it 3s), and the drain serves no profiled load.
	stopProfile, err := telemetry.ProfileCPUUntil(ctx, cfg.CPUProfile, log)
	if err != nil {
		return err
	}
	defer stopProfile()

	// A failed export (a wrong endpoint, a credential refused, a redirect)
	// is counted on the process's registry and logged at WARN, at most once
	// a minute, the shutdown's last flush included.
	reg := prometheus.NewRegistry()
	exportFailures := telemetry.NewExportFailures(reg, log)
	shutdownTracing, err := telemetry.Setup(ctx, cfg.Name, getenv, telemetry.ReportExportFailures(exportFailures))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(sctx); err != nil {
			log.Warn("telemetry shutdown: spans not flushed", "err", err.Error())
		}
		exportFailures.Unlogged()
	}()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var serviceLn net.Listener
	if cfg.ServiceAddr != "" {
		lc := net.ListenConfig{Control: reusePort}
		if serviceLn, err = lc.Listen(ctx, "tcp", cfg.ServiceAddr); err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen on SERVICE_ADDR: %w", err)
		}
	}
	var draining atomic.Bool
	handle := fnhttp.NewLazy(build, config.New(getenv), log)
	h := handler(cfg, log, reg, handle, &draining)
	if cfg.LoopbackHostOnly {
		h = loopback.Only("function "+cfg.Name, h)
	}
	srv := &http.Server{
		Handler:           h,
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	servicec := make(chan error, 1) // stays empty without a ServiceAddr
	if serviceLn != nil {
		go func() { servicec <- srv.Serve(serviceLn) }()
		log.Info("function serving", "addr", ln.Addr().String(), "service_addr", serviceLn.Addr().String())
	} else {
		log.Info("function serving", "addr", ln.Addr().String())
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case err := <-servicec:
		return fmt.Errorf("serve on SERVICE_ADDR: %w", err)
	case <-ctx.Done():
	}
	if serviceLn != nil {
		// First of all: the shared address stops taking connections, so
		// the kernel hands new ones to the other replicas (or refuses them
		// when none is left, and callers go through the gateway). Serve
		// has returned, and stopped tracking it, once servicec delivers.
		_ = serviceLn.Close()
		<-servicec
	}
	stopProfile()
	if cfg.DrainInterval > 0 {
		draining.Store(true)
		drain := cfg.DrainInterval + cfg.DrainMargin
		log.Info("draining: health check failing, still serving", "for", drain.String())
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-time.After(drain):
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.WriteTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Handler wraps handle with what every function gets: /_/health, ReadyPath
// (which asks handle when it is an fnhttp.Readier, and answers 200 otherwise), /_/metrics,
// the root of a public function (AtRoot), tracing (W3C traceparent in and
// out), the call id, a request deadline, a body limit, the text rule for the
// path and query (422 invalid_text) with one value per query parameter
// (fnhttp.CheckRequestText: empty values dropped, one sent twice 422
// invalid_request), request metrics, the shop's domain
// metrics on reg in the request's context (telemetry.ShopFrom) and panic
// recovery. Tests serve a function with it; Main serves through handler,
// which also answers /_/health and ReadyPath 503 while the replica drains.
func Handler(cfg Config, log *slog.Logger, reg *prometheus.Registry, handle http.Handler) http.Handler {
	return handler(cfg, log, reg, handle, nil)
}

// durationBuckets are function_request_duration_seconds' buckets for
// requests that may run for exec (exec_timeout): Prometheus's defaults, 5 ms
// to 10 s (the checkout latency SLO's rules read le="2.5"), then
// 15 s, exec and exec + 5 s, each where it is beyond the last. With the
// defaults alone every request slower than 10 s fell in +Inf, an answer at
// 12 s and one cut at the 30 s deadline alike, and a p95 past 10 s read as
// 10 s; exec + 5 s holds a request that ends just past its deadline (the 504
// is written once the context has ended). Three more buckets per series.
func durationBuckets(exec time.Duration) []float64 {
	b := slices.Clone(prometheus.DefBuckets)
	for _, s := range []float64{15, exec.Seconds(), exec.Seconds() + 5} {
		if s > b[len(b)-1] {
			b = append(b, s)
		}
	}
	return b
}

// handler is Handler whose /_/health and ReadyPath answer 503 while draining
// is true.
func handler(cfg Config, log *slog.Logger, reg *prometheus.Registry, handle http.Handler, draining *atomic.Bool) http.Handler {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "function_requests_total", Help: "Requests served by the function, by function, method and status code.",
	}, []string{"function", "method", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "function_request_duration_seconds", Help: "Time to serve a request.", Buckets: durationBuckets(cfg.ExecTimeout),
	}, []string{"function", "method", "code"})
	reg.MustRegister(requests, duration)
	shop := telemetry.NewShop(reg)

	served := AtRoot(cfg.Name, handle)
	fn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { // the handler cut it: counted as a 500
					if sw, _ := w.(*statusWriter); sw != nil {
						sw.status = http.StatusInternalServerError
					}
					panic(p)
				}
				ctx := r.Context()
				sw, _ := w.(*statusWriter) // instrument's
				if sw != nil {             // a bundle's member that panicked is named
					ctx = telemetry.WithFunction(ctx, sw.servedBy)
				}
				log.ErrorContext(ctx, "handler panicked", "panic", fmt.Sprint(p))
				if sw != nil && sw.begun { // fnhttp.Adapt's rule (AnswerBegun)
					// The answer has begun: a problem appended to it would
					// read as part of a success. Cut the connection
					// instead, counted as a 500.
					sw.status = http.StatusInternalServerError
					panic(http.ErrAbortHandler)
				}
				// The headers the handler set for the answer it meant to
				// give describe a body the problem is not: a length that
				// cut it short, an encoding that made it unreadable, a
				// validator, location or cookie sent with a 500.
				fnhttp.ForgetAnswer(w.Header())
				fnhttp.WriteProblem(w, fault.Internalf("panic: %v", p))
			}
		}()
		ctx, cancel := context.WithTimeout(r.Context(), cfg.ExecTimeout)
		defer cancel()
		ctx = telemetry.WithShop(telemetry.WithCallID(ctx, r.Header.Get("X-Call-Id")), shop)
		if r.Body != nil && r.Body != http.NoBody { // a request without a body has nothing to limit
			r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxRequestBytes)
		}
		// The text rule for the path and every query parameter, and one
		// value per parameter, before any handler reads them (bodies get
		// the rule in fnhttp.Decode).
		if err := fnhttp.CheckRequestText(r); err != nil {
			// A bundle's request is still its member's: counted and
			// traced under the member that would have served it.
			if b, ok := handle.(fnhttp.MemberNamer); ok {
				if name, _, ok := b.Member(r); ok {
					fnhttp.ServedBy(w, name)
				}
			}
			fnhttp.WriteProblem(w, err)
			return
		}
		served.ServeHTTP(w, r.WithContext(ctx))
	})
	traced := telemetry.Server(instrument(cfg.Name, requests, duration, fn), cfg.Name,
		func(op string, r *http.Request) string { return op + " " + telemetry.Method(r.Method) })

	mux := http.NewServeMux()
	mux.HandleFunc("GET /_/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if draining != nil && draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "draining")
			return
		}
		_, _ = io.WriteString(w, "OK")
	})
	mux.HandleFunc("GET "+ReadyPath, func(w http.ResponseWriter, r *http.Request) {
		if draining != nil && draining.Load() {
			fnhttp.WriteProblem(w, fault.E(fault.Unavailable, fault.CodeUnavailable, "draining"))
			return
		}
		if rd, ok := handle.(fnhttp.Readier); ok {
			if err := rd.Ready(r.Context()); err != nil {
				fnhttp.WriteProblem(w, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "not ready"))
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "OK")
	})
	mux.Handle("GET /_/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", traced)
	routed := callsFirst(mux, traced)
	if draining == nil {
		return routed
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			// Closing idle keep-alive connections instead would race with a
			// request already on its way over one (connection reset).
			w.Header().Set("Connection", "close")
		}
		routed.ServeHTTP(w, r)
	})
}

// callsFirst serves a request as mux does, where mux routes everything
// outside /_/ to calls under the pattern "/": a function call whose path
// mux would neither redirect (an unclean path) nor match elsewhere goes
// straight to calls, with the Pattern mux would set. mux's matching
// allocated five times per call (TestCallsFirstRoutesAsTheMux compares
// both on a table of paths and methods).
func callsFirst(mux *http.ServeMux, calls http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && r.RequestURI != "*" &&
			!strings.HasPrefix(p, "/_/") && cleanPath(p) == p {
			r.Pattern = "/"
			calls.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// cleanPath is net/http's (unexported) canonical path, which ServeMux
// redirects any other path to.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			np = p
		} else {
			np += "/"
		}
	}
	return np
}

// instrument counts and times every request of next by function, method and
// status code, with the label values promhttp's InstrumentHandlerCounter and
// InstrumentHandlerDuration give (method lower-case, "unknown" for others;
// the status, 200 when none was written), through one status-recording
// writer and without the labels map those build per request. The function is
// name, or the member of a bundle that served the request (fnhttp.ServedBy):
// the faasd-CE stack's bundles serve several functions from one process, and
// the rules and dashboards select by function (monitoring/prometheus.ce.yml
// keeps the label with honor_labels).
//
// The children of a (function, method, status) are looked up in the vectors once
// and kept: the vectors' look-up hashes and checks the label values, and
// the code's label is a new string, on every request otherwise.
func instrument(name string, requests *prometheus.CounterVec, duration *prometheus.HistogramVec, next http.Handler) http.Handler {
	type key struct {
		function string // name, or the member of a bundle that served (fnhttp.ServedBy)
		method   string // methodLabel's value: one of a dozen constants
		status   int
	}
	type children struct {
		requests prometheus.Counter
		duration prometheus.Observer
	}
	var (
		mu   sync.RWMutex
		kept = map[key]children{}
	)
	lookup := func(k key) children {
		mu.RLock()
		c, ok := kept[k]
		mu.RUnlock()
		if ok {
			return c
		}
		code := codeLabel(k.status)
		c = children{requests: requests.WithLabelValues(k.function, k.method, code),
			duration: duration.WithLabelValues(k.function, k.method, code)}
		mu.Lock()
		kept[k] = c
		mu.Unlock()
		return c
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() { // deferred: a request cut by http.ErrAbortHandler counts too
			c := lookup(key{cmp.Or(sw.servedBy, name), methodLabel(r.Method), sw.status})
			c.requests.Inc()
			c.duration.Observe(time.Since(began).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// methodLabel is promhttp's method label value.
func methodLabel(m string) string {
	switch m {
	case "GET", "get":
		return "get"
	case "PUT", "put":
		return "put"
	case "HEAD", "head":
		return "head"
	case "POST", "post":
		return "post"
	case "DELETE", "delete":
		return "delete"
	case "CONNECT", "connect":
		return "connect"
	case "OPTIONS", "options":
		return "options"
	case "NOTIFY", "notify":
		return "notify"
	case "TRACE", "trace":
		return "trace"
	case "PATCH", "patch":
		return "patch"
	}
	return "unknown"
}

// codeLabel is promhttp's code label value.
func codeLabel(status int) string {
	switch {
	case status == 0:
		return "200"
	case status >= 100 && status <= 599:
		return strconv.Itoa(status)
	}
	return "unknown"
}

// statusWriter records the status a handler answers with, and whether its
// answer began (AnswerBegun).
type statusWriter struct {
	http.ResponseWriter
	status   int
	servedBy string // the bundle's member that served, when one did
	begun    bool
}

// AnswerBegun tells fnhttp.Adapt whether the answer began: a status was
// written (an informational one aside: 101 is none), or a byte of body, or
// it was flushed. Adapt, given this writer, records it in a writer of its
// own otherwise, an allocation per request.
func (w *statusWriter) AnswerBegun() bool { return w.begun }

// SetServedBy is fnhttp.ServedBy's: the request's metrics are the member's
// (and so is the line a panic logs; telemetry.Server names the span).
func (w *statusWriter) SetServedBy(function string) { w.servedBy = function }

func (w *statusWriter) WriteHeader(status int) {
	if fnhttp.Final(status) {
		if w.status == 0 { // the final status, not an informational one before it
			w.status = status
		}
		w.begun = true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.begun = true
	return w.ResponseWriter.Write(b)
}

// Flush lets streamed answers through (it sends the status too).
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.begun = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
