package fntest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Run posts {} to h as a scheduled run does, with credential (none when
// empty) and shop's metrics in the request's context, and returns the
// status.
func Run(h http.Handler, credential string, shop *telemetry.Shop) int {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
	if credential != "" {
		req.Header.Set(auth.InternalHeader, credential)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req.WithContext(telemetry.WithShop(req.Context(), shop)))
	return w.Code
}

// Runs checks the runs counter name of reg (result ok or error, help its
// help text): ok runs counted ok, failed counted error.
func Runs(tb testing.TB, reg *prometheus.Registry, name, help string, ok, failed int) {
	tb.Helper()
	want := fmt.Sprintf("# HELP %[1]s %[2]s\n# TYPE %[1]s counter\n%[1]s{result=\"error\"} %[3]d\n%[1]s{result=\"ok\"} %[4]d\n",
		name, help, failed, ok)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), name); err != nil {
		tb.Error(err)
	}
}
