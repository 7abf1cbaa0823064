package telemetry

import (
	"sync"
	"sync/atomic"
	"time"
)

// RepeatInterval is how often Repeats lets a repeated failure's line be
// logged: readiness probes every 2 s per replica retry a failed build, and
// a Redis that is down or refuses the login fails every cache call, which
// would otherwise be thousands of lines a second under load.
const RepeatInterval = time.Minute

// Repeats decides which occurrences of a failure that repeats are logged:
// the first, one whose key differs from the last one's, and a repeat of the
// last key once RepeatInterval has passed since the last line; the others
// are counted (suppressed) for the next line to report. fnhttp.Lazy keys a
// failed build by its message, the product cache (catalogenv) a failed call
// by its kind. The end of a failure is reported by Settle (a caller that
// sees it rarely: a build) or Recovered (one that sees it on a hot path: a
// call that succeeds). The zero value is ready to use; it is safe for
// concurrent use.
type Repeats struct {
	// failing is set with every occurrence and cleared by Settle and
	// Recovered, so Recovered costs a success one atomic load while nothing
	// failed. It is written under mu only: there it says whether an
	// occurrence was recorded since the last Settle.
	failing atomic.Bool

	mu         sync.Mutex
	last       string    // the key of the last occurrence, logged or not
	loggedAt   time.Time // when the last line was written
	suppressed int       // occurrences not logged since that line
}

// Log records an occurrence of key at now and reports whether to log it;
// when it does, suppressed is how many occurrences were not logged since
// the last line (the caller puts it in the line), and the count restarts.
func (r *Repeats) Log(key string, now time.Time) (log bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing.Swap(true) && key == r.last && now.Sub(r.loggedAt) < RepeatInterval {
		r.suppressed++
		return false, 0
	}
	suppressed = r.suppressed
	r.last, r.loggedAt, r.suppressed = key, now, 0
	return true, suppressed
}

// Settle is called once the failure has stopped (a build succeeded): it
// reports whether any occurrence was recorded since the last Settle and how
// many were not logged since the last line, and forgets them.
func (r *Repeats) Settle() (seen bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen, suppressed = r.failing.Swap(false), r.suppressed
	r.last, r.loggedAt, r.suppressed = "", time.Time{}, 0
	return seen, suppressed
}

// Recovered is Settle for a caller on a hot path, called on every success:
// it reports true once, on the first success after an occurrence, with the
// count of occurrences not logged since the last line, so the caller logs
// one line saying the failure is over (the last suppressed count is not
// lost, and a new failure is logged at once, not a minute after the last
// line). While nothing failed it costs one atomic load, no lock.
func (r *Repeats) Recovered() (recovered bool, suppressed int) {
	if !r.failing.Load() {
		return false, 0
	}
	return r.Settle()
}

// SuppressedAttrs is a count of occurrences not logged, as log attributes
// ("suppressed", n), none when n is 0.
func SuppressedAttrs(n int) []any {
	if n == 0 {
		return nil
	}
	return []any{"suppressed", n}
}
