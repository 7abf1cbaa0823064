package proctest

import (
	"context"
	"testing"
	"time"
)

// BeforeDeadline returns d, or less: what is left before t's deadline (go
// test's -timeout, t.Deadline) less margin, and at least a second. A wait
// of d bounded by it that hangs ends, and fails the test with the wait's
// own message, before -timeout: past it the test binary panics, printing
// every goroutine's stack and no message of the test's (go test's default
// -timeout, outside make, is 10 min). margin is what the test keeps for
// its cleanups and its report. Without a deadline (-timeout 0) d stands.
func BeforeDeadline(t *testing.T, d, margin time.Duration) time.Duration {
	deadline, ok := t.Deadline()
	if !ok {
		return d
	}
	return max(min(d, time.Until(deadline)-margin), time.Second)
}

// DeadlineContext returns a context that ends margin before t's deadline
// (never without one), for what takes no deadline of its own: a helper
// process the test runs (rabbitmqctl), a private server's start. It is
// cancelled by a cleanup registered here, so it stays valid for the
// cleanups registered after this call, which run before.
func DeadlineContext(t *testing.T, margin time.Duration) context.Context {
	deadline, ok := t.Deadline()
	if !ok {
		return context.Background()
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-margin))
	t.Cleanup(cancel)
	return ctx
}

// CleanupMargin is the time a test that runs a private RabbitMQ node keeps
// before its deadline for its cleanups and its report: the node's Close
// (rabbitnode's Stop waits up to 60 s before it kills the node) and the
// cleanups that run before it (CleanupTimeout each).
const CleanupMargin = 90 * time.Second

// CleanupTimeout bounds each call a cleanup makes on a context of its own
// (context.WithTimeout(context.Background(), CleanupTimeout)): the test's
// contexts may have ended by the time cleanups run.
const CleanupTimeout = 20 * time.Second

// stopAtMost is how long a private server's clean stop may take at most
// (rabbitnode's Stop: 60 s, then SIGKILL) and a little more.
const stopAtMost = 75 * time.Second

// Closer is a private server a test runs: Close stops it cleanly, which
// may take up to a minute; Kill ends it at once.
type Closer interface {
	Close() error
	Kill() error
}

// CloseAtEnd registers a cleanup that closes s: killed first when the
// test has failed (nothing of its state is wanted) or when its deadline is
// too near for a clean stop, so that the cleanup ends before go test's
// -timeout.
func CloseAtEnd(t *testing.T, s Closer) {
	t.Cleanup(func() {
		deadline, ok := t.Deadline()
		if t.Failed() || ok && time.Until(deadline) < stopAtMost {
			_ = s.Kill()
		}
		_ = s.Close()
	})
}
