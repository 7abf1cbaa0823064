package telemetry_test

import (
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/telemetry"
)

// Recovered reports the end of a failure once, on the first success after
// an occurrence, with the occurrences not logged since the last line, and
// nothing while nothing failed; the next failure is logged at once.
func TestRecoveredReportsTheEndOfAFailureOnce(t *testing.T) {
	var r telemetry.Repeats
	if ok, n := r.Recovered(); ok || n != 0 {
		t.Fatalf("Recovered with nothing failed = %v, %d", ok, n)
	}
	now := time.Now()
	for i := range 5 {
		if log, _ := r.Log("down", now); log != (i == 0) {
			t.Fatalf("occurrence %d: log %v", i, log)
		}
	}
	if ok, n := r.Recovered(); !ok || n != 4 {
		t.Fatalf("Recovered after 5 occurrences, 1 logged = %v, %d; want true, 4", ok, n)
	}
	if ok, n := r.Recovered(); ok || n != 0 {
		t.Fatalf("Recovered again = %v, %d; want false", ok, n)
	}
	if log, _ := r.Log("down", now.Add(time.Second)); !log {
		t.Fatal("a new failure within the minute is not logged")
	}
}
