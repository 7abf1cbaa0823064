package fnhttp

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/telemetry"
)

// A Builder builds a function's handler from its configuration. Every
// function package exports one as Build (docs/adding-a-function.md); fnserve,
// the multi-call binary and the bundles serve a function only through it.
type Builder func(c *config.Reader, log *slog.Logger) (http.Handler, error)

// A Readier is a handler that can tell whether it would serve a call now
// rather than answer it 503 because something it needs could not be built.
// fnserve's readiness path (/_/ready) asks it; Lazy and the bundles of
// internal/bundle are Readiers.
type Readier interface {
	// Ready returns nil when the handler can serve, else why not, already
	// logged (fnserve answers 503 without it). It may build what is not
	// built yet.
	Ready(ctx context.Context) error
}

// Lazy is a function's handler built with its Builder on first use and kept
// once built. A failed build is answered 503 (the cause is logged, a
// repeated one at most once a minute, never sent) and tried again on the next request or readiness check, each time
// from c.Fresh(), so a function whose database, secret or variable was
// briefly missing recovers without a restart. It is safe for concurrent use:
// builds are serialised, and none runs once one succeeded.
type Lazy struct {
	build Builder
	c     *config.Reader
	log   *slog.Logger
	now   func() time.Time

	mu sync.Mutex
	h  http.Handler // nil until a build succeeded
	// failures are the failed builds, keyed by their message: which were
	// logged (telemetry.RepeatInterval: readiness probes come every 2 s per
	// replica on OpenFaaS Standard, and each tries the build).
	failures telemetry.Repeats
}

// NewLazy returns the handler that build builds on first use. log may be nil
// (slog.Default()); it is what build gets, and where a failed build is logged.
func NewLazy(build Builder, c *config.Reader, log *slog.Logger) *Lazy {
	if log == nil {
		log = slog.Default()
	}
	return &Lazy{build: build, c: c, log: log, now: time.Now}
}

// handler returns the built handler, building it first when no build has
// succeeded yet. A failure is returned as an Unavailable fault that names no
// cause to a client, and logged here at ERROR: the first one, one whose
// message differs from the last, and a repeat of the last one once
// telemetry.RepeatInterval has passed since the last line; each line says how many
// failed builds were not logged before it (suppressed), and so does the one
// line of the build that succeeds after failures. A caller that is gone
// by the time the lock is its own (a probe that timed out while another build
// ran: a first build may take seconds, postgres.OpenTimeout) starts no build,
// so the callers queued behind a slow build do not each run one after it.
func (l *Lazy) handler(ctx context.Context) (http.Handler, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h != nil {
		return l.h, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "service temporarily unavailable")
	}
	built, err := l.build(l.c.Fresh(), l.log)
	if err != nil {
		l.logFailure(ctx, err.Error())
		return nil, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "service temporarily unavailable")
	}
	if failed, suppressed := l.failures.Settle(); failed {
		l.log.InfoContext(ctx, "function ready", telemetry.SuppressedAttrs(suppressed)...)
	}
	l.h = built
	return built, nil
}

// logFailure logs a failed build unless it repeats the last one within
// telemetry.RepeatInterval of the last line, in which case it is counted.
func (l *Lazy) logFailure(ctx context.Context, msg string) {
	if log, suppressed := l.failures.Log(msg, l.now()); log {
		l.log.ErrorContext(ctx, "function not ready", append([]any{"err", msg}, telemetry.SuppressedAttrs(suppressed)...)...)
	}
}

// ServeHTTP serves r with the built handler, or answers 503 when it cannot
// be built.
func (l *Lazy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, err := l.handler(r.Context())
	if err != nil {
		WriteProblem(w, err)
		return
	}
	h.ServeHTTP(w, r)
}

// Ready builds the handler when it is not built yet and reports whether it
// can serve: nil once built, unless the built handler is itself a Readier
// that is not ready (a bundle with a member that cannot be built).
func (l *Lazy) Ready(ctx context.Context) error {
	h, err := l.handler(ctx)
	if err != nil {
		return err
	}
	if rd, ok := h.(Readier); ok {
		return rd.Ready(ctx)
	}
	return nil
}

// MemberNamer is a handler that serves several functions (internal/bundle's
// Bundle, and a Lazy that built one): Member names the one that serves r, or
// false.
type MemberNamer interface {
	Member(r *http.Request) (string, *http.Request, bool)
}

// Member names the function of a bundle that serves r (internal/bundle's
// Bundle.Member) when the built handler serves several; fnserve asks it to
// count and trace a request it refuses before dispatch under that member.
// It never builds: before a build has succeeded it answers false, as it does
// when the built handler is not a bundle.
func (l *Lazy) Member(r *http.Request) (string, *http.Request, bool) {
	l.mu.Lock()
	h := l.h
	l.mu.Unlock()
	m, ok := h.(MemberNamer)
	if !ok {
		return "", nil, false
	}
	return m.Member(r)
}
