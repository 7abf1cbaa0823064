package payments

import (
	"context"
	"errors"
	"testing"

	"github.com/shopfaas/shop/internal/fault"
)

// A processor call cut by its deadline has an unknown outcome (504), even
// when the processor's adapter called it unavailable: a 503 would tell the
// saga that nothing was captured. Until 2026-12-06 an Unavailable error
// wrapping the deadline passed through as 503 (the simulator's own ledger
// errors are classified right since cd38adc; this holds for any adapter).
func TestADeadlineIsAnUnknownOutcomeHoweverTheProcessorCalledIt(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want fault.Kind
	}{
		{"unavailable wrapping the deadline", fault.Wrap(context.DeadlineExceeded, fault.Unavailable, ErrUnavailable.Code, ErrUnavailable.Message), fault.Timeout},
		{"bare deadline", context.DeadlineExceeded, fault.Timeout},
		{"timeout", fault.Wrap(context.DeadlineExceeded, fault.Timeout, ErrTimeout.Code, ErrTimeout.Message), fault.Timeout},
		{"unavailable, no deadline", fault.Wrap(errors.New("connection refused"), fault.Unavailable, ErrUnavailable.Code, ErrUnavailable.Message), fault.Unavailable},
		{"declined card", fault.E(fault.Invalid, "invalid_payment_token", "no such token"), fault.Invalid},
		{"anything else", errors.New("boom"), fault.Unavailable},
	}
	for _, c := range cases {
		if got := fault.KindOf(processorError(c.err)); got != c.want {
			t.Errorf("%s: kind %v, want %v", c.name, got, c.want)
		}
	}
}
