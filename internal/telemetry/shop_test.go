package telemetry

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestShopExportsTheQuietSeries: from the first recovery run and the first
// compensation on, the error and owed series (and every recovered result)
// exist at 0, so the alerts on
// them (RecoveryRunsFailing, CompensationsOwed) and the dashboard read 0 in
// a healthy shop instead of "no data".
func TestShopExportsTheQuietSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewShop(reg)
	m.Recovery(false, Recovered{Confirmed: 1, Compensations: 2})
	m.Compensation(true)
	want := `
# HELP shop_recovered_orders_total Orders recover-orders drove, by how they ended the run: confirmed, failed, still_pending, expired (given up on after GIVE_UP_AFTER); cart_removal for a confirmed order driven for its owed cart removal, compensation for an ended order driven for an owed release or refund; taken_over for an order whose claim another run took over while this one drove it (that run counts how it ends); error for an order claimed that the run could not drive.
# TYPE shop_recovered_orders_total counter
shop_recovered_orders_total{result="cart_removal"} 0
shop_recovered_orders_total{result="compensation"} 2
shop_recovered_orders_total{result="confirmed"} 1
shop_recovered_orders_total{result="error"} 0
shop_recovered_orders_total{result="expired"} 0
shop_recovered_orders_total{result="failed"} 0
shop_recovered_orders_total{result="still_pending"} 0
shop_recovered_orders_total{result="taken_over"} 0
# HELP shop_recovery_runs_total recover-orders runs, by result: ok or error.
# TYPE shop_recovery_runs_total counter
shop_recovery_runs_total{result="error"} 0
shop_recovery_runs_total{result="ok"} 1
# HELP shop_saga_compensations_total Compensations (release, refund) by result: owed when one is left for recover-orders, settled when it is done.
# TYPE shop_saga_compensations_total counter
shop_saga_compensations_total{result="owed"} 0
shop_saga_compensations_total{result="settled"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shop_recovery_runs_total", "shop_saga_compensations_total",
		"shop_recovered_orders_total"); err != nil {
		t.Error(err)
	}
}
