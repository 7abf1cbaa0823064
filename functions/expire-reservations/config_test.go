package function

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/config"
)

// SETTLE_AFTER is refused at start, named with every other problem, when it
// is past MaxSettleAfter (the longest hold, as ?settle_after_seconds): a
// longer delay kept the stock of abandoned checkouts past their holds'
// expiry, and a confirmed order's units reserved instead of sold, as long
// as it said (until 2026-12-07 any duration was taken, "8760h" too). So is
// one below MinSettleAfter (until 2026-12-07 "0" and "1ns" were taken): no
// delay asks order-statuses about every checkout in flight on every run.
func TestSettleAfterIsBoundedAtStart(t *testing.T) {
	for _, tc := range []struct {
		value   string
		refused bool
	}{
		{"1s", false}, {"1", false}, {"30s", false}, {"1h", false}, {"3600", false},
		{"0", true}, {"0s", true}, {"1ns", true}, {"999ms", true},
		{"1h0m1s", true}, {"3601", true}, {"8760h", true}, {"-1s", true}, {"soon", true},
	} {
		// No database nor secrets: the build fails either way, on the
		// configuration, before it connects; only the naming differs.
		_, err := Build(config.New(config.Env(map[string]string{"SETTLE_AFTER": tc.value, config.SecretsDirEnv: t.TempDir()})), slog.New(slog.DiscardHandler))
		if err == nil {
			t.Fatalf("SETTLE_AFTER=%s: built without a database", tc.value)
		}
		if named := strings.Contains(err.Error(), "SETTLE_AFTER"); named != tc.refused {
			t.Errorf("SETTLE_AFTER=%s: refused %v, want %v: %v", tc.value, named, tc.refused, err)
		}
	}
}
