package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/types"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/schedule"
)

// Config configures the scheduler.
type Config struct {
	// GatewayURL is the OpenFaaS gateway (GATEWAY_URL).
	GatewayURL string
	// Credential is the internal credential sent in X-Internal-Token
	// (secret internal-token-scheduler): scheduled functions are internal
	// and accept the scheduler as a caller (routes.Table).
	Credential string
	// Username and Password are the gateway's basic-auth credentials
	// (secrets basic-auth-user, basic-auth-password), optional.
	Username, Password string
	// RefreshInterval is how often the functions are listed again
	// (REFRESH_INTERVAL), default 10s.
	RefreshInterval time.Duration
	// InvokeTimeout bounds one invocation (INVOKE_TIMEOUT), default 2m.
	InvokeTimeout time.Duration
	// Location is the time zone of the cron expressions (SCHEDULE_TZ),
	// default UTC; an expression's own CRON_TZ= prefix wins.
	Location *time.Location
}

func (c *Config) setDefaults() {
	c.GatewayURL = strings.TrimRight(c.GatewayURL, "/")
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 10 * time.Second
	}
	if c.InvokeTimeout <= 0 {
		c.InvokeTimeout = 2 * time.Minute
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
}

// Validate reports every configuration problem at once.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.GatewayURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("GATEWAY_URL must be an http(s) URL"))
	}
	if c.Credential == "" {
		errs = append(errs, fmt.Errorf("the internal-token-scheduler secret is required"))
	}
	return errors.Join(errs...)
}

// Scheduler invokes the gateway's scheduled functions (annotation
// "schedule"; internal/schedule.FromAnnotations) on their schedules, one run at a time
// per function: a tick that finds the previous run still going is skipped
// and logged. It never stops on a transient error: a failed refresh keeps the
// last known functions, a failed invocation is logged and retried at the next
// scheduled time.
type Scheduler struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger

	mu   sync.Mutex
	jobs map[string]*entry
	// running holds the functions with a run going, by name rather than on
	// their entry: a function that drops out of one listing (faasd
	// redeploys by removing and creating it) and comes back gets a new
	// entry while its run goes on, and a flag on the old entry let the
	// next tick start a second run beside it.
	running map[string]bool
	runs    sync.WaitGroup
}

type entry struct {
	job  schedule.Job
	next time.Time
}

// New returns a scheduler; it contacts nothing until Refresh or Run.
func New(cfg Config, log *slog.Logger) (*Scheduler, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Scheduler{cfg: cfg, log: log, jobs: map[string]*entry{}, running: map[string]bool{},
		// No redirect is followed (gatewayurl.NoRedirect): a 3xx is
		// logged as a refusal and its request goes nowhere else.
		client: &http.Client{Timeout: cfg.InvokeTimeout, CheckRedirect: gatewayurl.NoRedirect}}, nil
}

// Refresh lists the functions (GET /system/functions) and updates the
// schedules as of now: a new or changed expression is next due at its first
// time after now; a function that lost its annotation (or was removed) is no
// longer invoked (a run in progress finishes). On failure the previous
// schedules stay in force and the error is returned.
func (s *Scheduler) Refresh(ctx context.Context, now time.Time) error {
	fns, err := s.list(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fn := range fns {
		var ann map[string]string
		if fn.Annotations != nil {
			ann = *fn.Annotations
		}
		job, ok, err := schedule.FromAnnotations(fn.Name, ann)
		if err != nil {
			s.log.Warn("function has an invalid schedule, not scheduled", "target", fn.Name, "err", err.Error())
		}
		if !ok {
			continue
		}
		seen[fn.Name] = true
		e := s.jobs[fn.Name]
		if e != nil && e.job.Schedule.String() == job.Schedule.String() {
			continue
		}
		next := job.Schedule.Next(now.In(s.cfg.Location))
		if e == nil {
			s.jobs[fn.Name] = &entry{job: job, next: next}
			s.log.Info("function scheduled", "target", fn.Name, "schedule", job.Schedule.String(), "next", next)
			continue
		}
		e.job, e.next = job, next
		s.log.Info("schedule changed", "target", fn.Name, "schedule", job.Schedule.String(), "next", next)
	}
	for name := range s.jobs {
		if !seen[name] {
			delete(s.jobs, name)
			s.log.Info("function unscheduled", "target", name)
		}
	}
	return nil
}

func (s *Scheduler) list(ctx context.Context) ([]types.FunctionStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RefreshInterval)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.GatewayURL+"/system/functions", nil)
	if err != nil {
		return nil, err
	}
	if s.cfg.Username != "" {
		req.SetBasicAuth(s.cfg.Username, s.cfg.Password)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return nil, fmt.Errorf("list functions: gateway answered %s", res.Status)
	}
	var fns []types.FunctionStatus
	if err := json.NewDecoder(io.LimitReader(res.Body, 16<<20)).Decode(&fns); err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	return fns, nil
}

// Scheduled is the functions scheduled now and their next run times.
func (s *Scheduler) Scheduled() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.jobs))
	for name, e := range s.jobs {
		out[name] = e.next
	}
	return out
}

// Tick starts the runs due at now (in the background) and returns the names
// of the functions started. A function whose previous run is still going is
// skipped (logged). A tick that comes late runs a function once, never once
// per missed time; its next time is the first after now.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) []string {
	now = now.In(s.cfg.Location)
	var started []string
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range s.jobs {
		if e.next.IsZero() || now.Before(e.next) {
			continue
		}
		due := e.next
		e.next = e.job.Schedule.Next(now)
		if s.running[name] {
			s.log.Warn("previous run still going, tick skipped", "target", name, "due", due)
			continue
		}
		s.running[name] = true
		started = append(started, name)
		s.runs.Add(1)
		go s.invoke(ctx, name, due)
	}
	return started
}

// tracerScope is the instrumentation scope of the runs' spans: this
// package's import path, as every span's scope is (docs/observability.md).
const tracerScope = "github.com/shopfaas/shop/connectors/scheduler"

// invoke runs one scheduled invocation; ctx's cancellation does not cut it
// short (a sweep in progress finishes, within InvokeTimeout).
func (s *Scheduler) invoke(ctx context.Context, name string, due time.Time) {
	defer s.runs.Done()
	defer func() {
		s.mu.Lock()
		delete(s.running, name)
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.InvokeTimeout)
	defer cancel()
	// Each run starts a trace of its own; traceparent carries it into the
	// function. The run's lines are logged in its span's context, so they
	// carry its trace_id (telemetry.NewLogger): the function's lines and
	// spans for the same run are found by that id.
	ctx, span := otel.Tracer(tracerScope).Start(ctx, "schedule "+name, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithNewRoot())
	defer span.End()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.GatewayURL+"/function/"+url.PathEscape(name), strings.NewReader("{}"))
	if err != nil {
		s.log.ErrorContext(ctx, "scheduled invocation not built", "target", name, "err", err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(auth.InternalHeader, s.cfg.Credential)
	req.Header.Set("X-Scheduled-At", due.UTC().Format(time.RFC3339))
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	res, err := s.client.Do(req)
	if err != nil {
		// The run's span fails with it, as the relay's and the
		// connector's do: a trace of a run that never reached its
		// function must not read as a success.
		span.RecordError(err)
		span.SetStatus(codes.Error, "invocation failed")
		s.log.WarnContext(ctx, "scheduled invocation failed", "target", name, "due", due, "err", err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	tookMS := float64(time.Since(start).Microseconds()) / 1000
	span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
	if res.StatusCode/100 != 2 {
		span.SetStatus(codes.Error, "invocation refused")
		s.log.WarnContext(ctx, "scheduled invocation refused", "target", name, "due", due, "status", res.StatusCode, "took_ms", tookMS)
		return
	}
	s.log.InfoContext(ctx, "scheduled invocation done", "target", name, "due", due, "status", res.StatusCode, "took_ms", tookMS)
}

// Run refreshes at once and then on every value of refresh, ticks on every
// value of ticks, until ctx ends; then it waits for the runs in progress.
// main feeds both from tickers; tests feed them by hand.
func (s *Scheduler) Run(ctx context.Context, ticks, refresh <-chan time.Time) {
	if err := s.Refresh(ctx, time.Now()); err != nil {
		s.log.Warn("function refresh failed, keeping the last schedules", "err", err.Error())
	}
	defer s.runs.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-refresh:
			if err := s.Refresh(ctx, now); err != nil {
				s.log.Warn("function refresh failed, keeping the last schedules", "err", err.Error())
			}
		case now := <-ticks:
			s.Tick(ctx, now)
		}
	}
}

// Wait blocks until the runs in progress have finished.
func (s *Scheduler) Wait() { s.runs.Wait() }
