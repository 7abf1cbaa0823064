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
// runs around the full stack. The checkout's own SQL is printed against the
// same R3, and the checkout against its own SQL.
func TestRatiosAreToTheReferenceAroundTheirScenario(t *testing.T) {
	tg := targets{
		baseline: rate(1000), warm: rate(600), r3One: rate(100), sync: rate(80), one: rate(50), sqlOnly: rate(160),
		r3:      reference{before: rate(100), after: rate(300)},
		fs:      &fullStack{full: rate(15), r3: reference{before: rate(90), after: rate(110)}},
		workers: 8,
	}
	wantPrinted(t, tg,
		"synchronous checkout, 8 workers:      0.400 x R3 orders/s",
		"its own SQL alone, no functions (not a target): 0.800 x R3 orders/s",
		"the checkout reached 0.50 of its own SQL's orders/s",
		"full-stack checkout, events flowing:   0.150 x R3 orders/s",
		"100 / 300 orders/s before / after the checkout, 90 / 110 orders/s before / after the full stack")
	var out strings.Builder
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

// A throughput target is also printed as the CPU an order may cost at its
// rate, with the machine as busy as during the scenario, beside what an order
// cost and what PostgreSQL, RabbitMQ and the bench process took of it (a
// function's own CPU and a database's share are not in that figure).
func TestTargetsPrintTheirCPUBudget(t *testing.T) {
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	use := func(machine float64, by map[string]float64) cpuUse {
		u := cpuUse{wall: 10 * time.Second, machine: sec(machine), by: map[string]time.Duration{},
			partOf: map[string]string{"  of which the orders database": pgBackends}}
		for g, s := range by {
			u.by[g] = sec(s)
		}
		return u
	}
	tg := targets{
		baseline: rate(1000), warm: rate(600), r3One: rate(100), sync: rate(2000), one: rate(50),
		// 2,000 orders in 10 s with 1.72 CPUs busy, against R3's 2,150 orders/s:
		// at 0.40 x R3 (860 orders/s) an order may cost 1.72 / 860 s = 2 ms.
		syncCPU: use(17.2, map[string]float64{pgBackends: 3.1, "  of which the orders database": 1.7, pgRestGroup: 0.02,
			benchGroup: 0.74, "function create-order": 1.6}),
		r3: reference{before: rate(2100), after: rate(2200)},
		fs: &fullStack{full: rate(1000), r3: reference{before: rate(2000), after: rate(2000)},
			// at 0.15 x R3 (300 orders/s), 1.5 CPUs busy: 5 ms.
			cpu: use(15, map[string]float64{pgBackends: 2.5, rabbitGroup: 1.5, benchGroup: 0.5, "outbox-relay": 0.4})},
		workers: 8,
	}
	wantPrinted(t, tg,
		"CPU per order at 0.40 x R3, as busy as this run: 2.00 ms; used 8.60 ms, of which PostgreSQL, RabbitMQ and the bench process 1.93 ms",
		"CPU per order at 0.15 x R3, as busy as this run: 5.00 ms; used 15.00 ms, of which PostgreSQL, RabbitMQ and the bench process 4.50 ms")
	// A scenario that measured no CPU prints no budget.
	tg.syncCPU, tg.fs = cpuUse{}, nil
	var out strings.Builder
	printTargets(&out, tg)
	if strings.Contains(out.String(), "CPU per order at") {
		t.Errorf("a budget without a CPU measure:\n%s", out.String())
	}
}

// wantPrinted fails t for each of wants that printTargets does not write for
// tg.
func wantPrinted(t *testing.T, tg targets, wants ...string) {
	t.Helper()
	var out strings.Builder
	printTargets(&out, tg)
	for _, want := range wants {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed targets lack %q:\n%s", want, out.String())
		}
	}
}
