package deploycheck

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// Grafana units a panel's series may be shown in, by what its query
// computes (the ids of Grafana's "Throughput" unit category).
var (
	perSecondUnits = []string{"ops", "reqps", "cps", "rps", "wps", "iops"}
	perMinuteUnits = []string{"opm", "reqpm", "cpm", "rpm", "wpm"}
	secondsUnits   = []string{"s"}
	bytesUnits     = []string{"bytes", "decbytes"}
)

var (
	rateCall      = regexp.MustCompile(`\b(rate|irate)\(`)
	perMinute     = regexp.MustCompile(`\*\s*60\s*$`)
	quantileOfSec = regexp.MustCompile(`histogram_quantile\(.*_seconds_bucket\b`)
	secondsSeries = regexp.MustCompile(`_seconds\b|_duration\b`)
	bytesSeries   = regexp.MustCompile(`_bytes\b`)
	increaseCall  = regexp.MustCompile(`\bincrease\(`)
	division      = regexp.MustCompile(`\s/\s`)
)

// wantUnits are the units a series of expr may be shown in, and why; none
// when its query does not say (a count, a ratio).
func wantUnits(expr string) ([]string, string) {
	switch {
	case quantileOfSec.MatchString(expr):
		return secondsUnits, "a quantile of a histogram in seconds"
	case rateCall.MatchString(expr) && perMinute.MatchString(expr):
		return perMinuteUnits, "a per-second rate times 60"
	case rateCall.MatchString(expr):
		return perSecondUnits, "a per-second rate"
	case increaseCall.MatchString(expr):
		return nil, ""
	case division.MatchString(expr):
		return nil, "" // a ratio: percentunit, or whatever it divides into
	case secondsSeries.MatchString(expr):
		return secondsUnits, "a series in seconds"
	case bytesSeries.MatchString(expr):
		return bytesUnits, "a series in bytes"
	}
	return nil, ""
}

// A panel shows each series in the unit its query computes: a rate() per
// second (reqps, ops, …) or, multiplied by 60, per minute; a histogram's
// quantile or a gauge in seconds as a duration (s); bytes as bytes; and
// the unit s, bytes or a rate's is given to no query that does not compute
// one. The unit is the target's, the panel's default unless an override
// matched by its refId replaces it. Two panels showed their per-second
// rates as bare numbers ("Product cache errors by reason", "Notification
// emails by outcome": 0.05 read as five hundredths of an error), and the
// per-minute one as a bare number.
func TestPanelUnitsMatchTheirQueries(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root(t), "monitoring", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard: %v", err)
	}
	type override struct {
		Matcher struct {
			ID      string `json:"id"`
			Options any    `json:"options"`
		} `json:"matcher"`
		Properties []struct {
			ID    string `json:"id"`
			Value any    `json:"value"`
		} `json:"properties"`
	}
	checked := 0
	for _, f := range files {
		var dash struct {
			Panels []struct {
				Title       string `json:"title"`
				FieldConfig struct {
					Defaults struct {
						Unit string `json:"unit"`
					} `json:"defaults"`
					Overrides []override `json:"overrides"`
				} `json:"fieldConfig"`
				Targets []struct {
					RefID string `json:"refId"`
					Expr  string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		for _, p := range dash.Panels {
			for _, tg := range p.Targets {
				unit := p.FieldConfig.Defaults.Unit
				for _, o := range p.FieldConfig.Overrides {
					if o.Matcher.ID == "byFrameRefID" && o.Matcher.Options == tg.RefID {
						for _, prop := range o.Properties {
							if u, ok := prop.Value.(string); ok && prop.ID == "unit" {
								unit = u
							}
						}
					}
				}
				checked++
				want, why := wantUnits(tg.Expr)
				switch {
				case want != nil && !slices.Contains(want, unit):
					t.Errorf("%s: panel %q, %s: unit %q for %s, want one of %v",
						filepath.Base(f), p.Title, tg.Expr, unit, why, want)
				case want == nil && slices.Contains(secondsUnits, unit) && !secondsSeries.MatchString(tg.Expr):
					t.Errorf("%s: panel %q, %s: unit %q, but the query reads no series in seconds",
						filepath.Base(f), p.Title, tg.Expr, unit)
				case want == nil && slices.Contains(bytesUnits, unit) && !bytesSeries.MatchString(tg.Expr):
					t.Errorf("%s: panel %q, %s: unit %q, but the query reads no series in bytes",
						filepath.Base(f), p.Title, tg.Expr, unit)
				case want == nil && (slices.Contains(perSecondUnits, unit) || slices.Contains(perMinuteUnits, unit)):
					t.Errorf("%s: panel %q, %s: unit %q, but the query computes no rate",
						filepath.Base(f), p.Title, tg.Expr, unit)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no panel query in the dashboards")
	}
}

// wantUnits itself: a check that found nothing wrong in any dashboard must
// still know a wrong unit when it sees one.
func TestWantUnits(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (reason) (rate(shop_cache_errors_total{job="functions"}[5m]))`, perSecondUnits},
		{`sum by (outcome) (rate(shop_orders_total{job="functions"}[5m])) * 60`, perMinuteUnits},
		{`histogram_quantile(0.95, sum by (le) (rate(function_request_duration_seconds_bucket[5m])))`, secondsUnits},
		{`max by (database) (shop_outbox_oldest_pending_age_seconds)`, secondsUnits},
		{`max by (database) (time() - shop_outbox_last_observed_timestamp_seconds)`, secondsUnits},
		{`max(rabbitmq_process_resident_memory_bytes{job="rabbitmq"})`, bytesUnits},
		{`sum(increase(shop_orders_total[1h]))`, nil},
		{`max(redis_memory_used_bytes{job="redis"}) / max(redis_memory_max_bytes{job="redis"} > 0)`, nil},
		{`max by (database) (shop_outbox_pending_events)`, nil},
		{`shop:checkout_errors:ratio_rate1h`, nil},
	} {
		got, _ := wantUnits(tc.expr)
		if !slices.Equal(got, tc.want) {
			t.Errorf("wantUnits(%s) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}
