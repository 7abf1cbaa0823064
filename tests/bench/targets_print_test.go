package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/dev/load"
)

// rate is a result of n requests in one second.
func rate(n int) load.Result {
	return load.Result{Requests: n, Elapsed: time.Second, Latency: load.NewHistogram()}
}

// Each orders/s target is a ratio to R3 measured right before and right after
// its own scenario (the mean of the two), not to the R3 run at the start: the
// synchronous checkout's to the R3 runs around it, the full stack's to the R3
// runs around the full stack.
func TestRatiosAreToTheReferenceAroundTheirScenario(t *testing.T) {
	tg := targets{
		baseline: rate(1000), warm: rate(600), r3One: rate(100), sync: rate(80), one: rate(50),
		r3:      reference{before: rate(100), after: rate(300)},
		fs:      &fullStack{full: rate(15), r3: reference{before: rate(90), after: rate(110)}},
		workers: 8,
	}
	var out strings.Builder
	printTargets(&out, tg)
	got := out.String()
	for _, want := range []string{
		"synchronous checkout, 8 workers:      0.400 x R3 orders/s",
		"full-stack checkout, events flowing:   0.150 x R3 orders/s",
		"100 / 300 orders/s before / after the checkout, 90 / 110 orders/s before / after the full stack",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("printed targets lack %q:\n%s", want, got)
		}
	}
	out.Reset()
	printFullStack(&out, tg.fs)
	if want := "full speed: 15.0 orders/s (0.150 x R3)"; !strings.Contains(out.String(), want) {
		t.Errorf("full-stack figures lack %q:\n%s", want, out.String())
	}
}

// A reference with one run (the other failed to run) is that run's rate.
func TestReferenceOfOneRunIsThatRun(t *testing.T) {
	if got := (reference{before: rate(200)}).rps(); got != 200 {
		t.Errorf("rps %v, want 200", got)
	}
	if got := (reference{after: rate(200)}).rps(); got != 200 {
		t.Errorf("rps %v, want 200", got)
	}
}
