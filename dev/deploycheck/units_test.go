package deploycheck

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Grafana units a panel's series may be shown in, by what its query
// computes (the ids of Grafana's "Throughput" unit category).
var (
	perSecondUnits = []string{"ops", "reqps", "cps", "rps", "wps", "iops"}
	perMinuteUnits = []string{"opm", "reqpm", "cpm", "rpm", "wpm"}
	secondsUnits   = []string{"s"}
	bytesUnits     = []string{"bytes", "decbytes"}
	ratioUnits     = []string{"percentunit", "none", "short", ""}
	percentUnits   = []string{"percent"}
)

var (
	rateCall      = regexp.MustCompile(`\b(rate|irate)\(`)
	perMinute     = regexp.MustCompile(`\*\s*60\s*$`)
	quantileOfSec = regexp.MustCompile(`histogram_quantile\(.*_seconds_bucket\b`)
	secondsSeries = regexp.MustCompile(`_seconds\b|_duration\b`)
	bytesSeries   = regexp.MustCompile(`_bytes\b`)
	increaseCall  = regexp.MustCompile(`\bincrease\(`)
)

// wantUnits are the units a series of expr may be shown in, and why; none
// when its query does not say (a count, a gauge of no unit).
func wantUnits(expr string) ([]string, string) {
	if quantileOfSec.MatchString(expr) {
		return secondsUnits, "a quantile of a histogram in seconds"
	}
	if num, den, ok := quotient(expr); ok {
		return quotientUnits(expr, num, den)
	}
	switch {
	case rateCall.MatchString(expr) && perMinute.MatchString(expr):
		return perMinuteUnits, "a per-second rate times 60"
	case rateCall.MatchString(expr):
		return perSecondUnits, "a per-second rate"
	case increaseCall.MatchString(expr):
		return nil, ""
	case secondsSeries.MatchString(expr):
		return secondsUnits, "a series in seconds"
	case bytesSeries.MatchString(expr):
		return bytesUnits, "a series in bytes"
	}
	return nil, ""
}

// quotient is the dividend and the divisor of expr's outermost division,
// the "/" least deep in parentheses (label values blanked first: a path
// matcher holds slashes); ok is false when expr divides nothing.
func quotient(expr string) (num, den string, ok bool) {
	expr = labelValue.ReplaceAllString(expr, `$1""`)
	depth, least, at := 0, 0, -1
	for i := range len(expr) {
		switch expr[i] {
		case '(':
			depth++
		case ')':
			depth--
		case '/':
			if at < 0 || depth < least {
				least, at = depth, i
			}
		}
	}
	if at < 0 {
		return "", "", false
	}
	start, end := at, at+1
	for d := 0; start > 0; start-- {
		if c := expr[start-1]; c == ')' {
			d++
		} else if c == '(' {
			if d == 0 {
				break
			}
			d--
		}
	}
	for d := 0; end < len(expr); end++ {
		if c := expr[end]; c == '(' {
			d++
		} else if c == ')' {
			if d == 0 {
				break
			}
			d--
		}
	}
	return expr[start:at], expr[at+1 : end], true
}

// measure is what one side of a division counts: seconds, bytes or things,
// and whether per second (a rate), per window (an increase) or neither.
type measure struct{ unit, per string }

// Series in seconds or in bytes: a gauge, a counter of them, or a
// histogram's _sum; a histogram's _bucket and _count count observations.
var (
	secondsOperand = regexp.MustCompile(`_seconds(?:_sum|_total)?\b|_duration\b`)
	bytesOperand   = regexp.MustCompile(`_bytes(?:_sum|_total)?\b`)
	times100       = regexp.MustCompile(`\*\s*100\s*$`)
)

func measureOf(operand string) measure {
	m := measure{unit: "things"}
	switch {
	case secondsOperand.MatchString(operand):
		m.unit = "seconds"
	case bytesOperand.MatchString(operand):
		m.unit = "bytes"
	}
	switch {
	case rateCall.MatchString(operand):
		m.per = "second"
	case increaseCall.MatchString(operand):
		m.per = "window"
	}
	return m
}

// quotientUnits are the units of expr, num / den: a ratio (the same unit
// over the same, both rates, both increases or neither) is unitless; a
// sum in seconds or bytes over a count is an average in that unit; a rate
// over a count of things (a rate per instance) is still a rate.
func quotientUnits(expr, num, den string) ([]string, string) {
	n, d := measureOf(num), measureOf(den)
	switch {
	case n.per == d.per && n.unit == d.unit && times100.MatchString(expr):
		return percentUnits, "a ratio times 100"
	case n.per == d.per && n.unit == d.unit:
		return ratioUnits, "a ratio"
	case n.per == d.per && n.unit == "seconds" && d.unit == "things":
		return secondsUnits, "an average in seconds (a sum over a count)"
	case n.per == d.per && n.unit == "bytes" && d.unit == "things":
		return bytesUnits, "an average in bytes (a sum over a count)"
	case n.per == "second" && d.per == "" && n.unit == "things" && d.unit == "things" && perMinute.MatchString(expr):
		return perMinuteUnits, "a per-second rate over a count, times 60"
	case n.per == "second" && d.per == "" && n.unit == "things" && d.unit == "things":
		return perSecondUnits, "a per-second rate over a count"
	}
	return nil, ""
}

// panel is a Grafana panel as these checks read it: its id, type and
// datasource, its unit, its overrides, its queries (each with its
// datasource), and for a row the panels it holds (a collapsed
// row keeps them in its own "panels"; an open one leaves them after it).
type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// dashboardPanels are the panels of a dashboard's JSON, those inside its
// rows included.
func dashboardPanels(b []byte) ([]panel, error) {
	var dash struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		return nil, err
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return all, nil
}

// unitProblems are the queries of dashboard b (named file) shown in a unit
// that is not the one they compute, and how many queries were checked.
func unitProblems(file string, b []byte) ([]string, int, error) {
	panels, err := dashboardPanels(b)
	if err != nil {
		return nil, 0, err
	}
	var problems []string
	checked := 0
	for _, p := range panels {
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
				problems = append(problems, fmt.Sprintf("%s: panel %q, %s: unit %q for %s, want one of %q",
					file, p.Title, tg.Expr, unit, why, want))
			case want == nil && slices.Contains(secondsUnits, unit) && !secondsSeries.MatchString(tg.Expr):
				problems = append(problems, fmt.Sprintf("%s: panel %q, %s: unit %q, but the query reads no series in seconds",
					file, p.Title, tg.Expr, unit))
			case want == nil && slices.Contains(bytesUnits, unit) && !bytesSeries.MatchString(tg.Expr):
				problems = append(problems, fmt.Sprintf("%s: panel %q, %s: unit %q, but the query reads no series in bytes",
					file, p.Title, tg.Expr, unit))
			case want == nil && (slices.Contains(perSecondUnits, unit) || slices.Contains(perMinuteUnits, unit)):
				problems = append(problems, fmt.Sprintf("%s: panel %q, %s: unit %q, but the query computes no rate",
					file, p.Title, tg.Expr, unit))
			}
		}
	}
	return problems, checked, nil
}

// A panel shows each series in the unit its query computes: a rate() per
// second (reqps, ops, …) or, multiplied by 60, per minute; a histogram's
// quantile or a gauge in seconds as a duration (s); bytes as bytes; a
// ratio unitless or as a percentage; an average (_sum over _count) in the
// sum's unit; and the unit s, bytes or a rate's is given to no query that
// does not compute one. The unit is the target's, the panel's default
// unless an override matched by its refId replaces it; a row's panels are
// checked as the others. Two panels showed their per-second
// rates as bare numbers ("Product cache errors by reason", "Notification
// emails by outcome": 0.05 read as five hundredths of an error), and the
// per-minute one as a bare number.
func TestPanelUnitsMatchTheirQueries(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root(t), "monitoring", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard: %v", err)
	}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		problems, n, err := unitProblems(filepath.Base(f), b)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		for _, p := range problems {
			t.Error(p)
		}
		checked += n
	}
	if checked == 0 {
		t.Fatal("no panel query in the dashboards")
	}
}

// The unit check knows a wrong unit in a dashboard made wrong on purpose,
// and a right one: a ratio of two rates (or of two counts) is unitless, not
// a rate; an average, a _sum over its _count, is in the sum's unit; and a
// panel inside a row is checked as one at the top.
func TestUnitCheckOnDashboardsMadeWrong(t *testing.T) {
	dashboard := func(unit, expr string) string {
		b, err := json.Marshal(expr)
		if err != nil {
			t.Fatal(err)
		}
		return `{"title": "P", "fieldConfig": {"defaults": {"unit": "` + unit + `"}}, "targets": [{"refId": "A", "expr": ` + string(b) + `}]}`
	}
	const (
		errorRatio = `sum(rate(function_requests_total{code=~"5.."}[5m])) / sum(rate(function_requests_total[5m]))`
		average    = `sum by (step) (rate(shop_saga_step_duration_seconds_sum[5m])) / sum by (step) (rate(shop_saga_step_duration_seconds_count[5m]))`
		perSecond  = `sum by (reason) (rate(shop_cache_errors_total[5m]))`
	)
	for _, tc := range []struct {
		name, panels string
		want         string // a problem naming this, or none when empty
	}{
		{"a ratio of rates as a percentage", dashboard("percentunit", errorRatio), ""},
		{"a ratio of rates as a rate", dashboard("ops", errorRatio), `unit "ops" for a ratio`},
		{"a ratio of rates times 100 as percent", dashboard("percent", errorRatio+" * 100"), ""},
		{"a ratio of rates times 100 as percentunit", dashboard("percentunit", errorRatio+" * 100"), `unit "percentunit" for a ratio times 100`},
		{"an average of a histogram in seconds", dashboard("s", average), ""},
		{"an average of a histogram in seconds as a rate", dashboard("ops", average), `unit "ops" for an average in seconds`},
		{"a rate at the top", dashboard("short", perSecond), `unit "short" for a per-second rate`},
		{"a rate in a collapsed row", `{"type": "row", "title": "R", "panels": [` + dashboard("short", perSecond) + `]}`, `unit "short" for a per-second rate`},
		{"a ratio in a collapsed row", `{"type": "row", "title": "R", "panels": [` + dashboard("ops", errorRatio) + `]}`, `unit "ops" for a ratio`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems, checked, err := unitProblems("made.json", []byte(`{"panels": [`+tc.panels+`]}`))
			if err != nil {
				t.Fatal(err)
			}
			if checked == 0 {
				t.Errorf("no query checked")
			}
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Errorf("problems %q, want none", problems)
			case tc.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], tc.want)):
				t.Errorf("problems %q, want one naming %q", problems, tc.want)
			}
		})
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
		{`max(redis_memory_used_bytes{job="redis"}) / max(redis_memory_max_bytes{job="redis"} > 0)`, ratioUnits},
		{`sum(pg_stat_activity_count{job="postgres"}) / max(pg_settings_max_connections{job="postgres"})`, ratioUnits},
		{`sum(rate(function_requests_total{code=~"5.."}[5m])) / sum(rate(function_requests_total[5m]))`, ratioUnits},
		{`sum(rate(function_requests_total{code=~"5.."}[5m])) / sum(rate(function_requests_total[5m])) * 100`, percentUnits},
		{`sum(increase(shop_notification_emails_total{outcome="refused"}[1h])) / sum(increase(shop_notification_emails_total[1h]))`, ratioUnits},
		{`sum(rate(shop_saga_step_duration_seconds_bucket{le="0.5"}[5m])) / sum(rate(shop_saga_step_duration_seconds_count[5m]))`, ratioUnits},
		{`sum(rate(shop_saga_step_duration_seconds_sum[5m])) / sum(rate(shop_saga_step_duration_seconds_count[5m]))`, secondsUnits},
		{`sum(rate(function_requests_total{path="/a/b"}[5m])) / count(up{job="functions"})`, perSecondUnits},
		{`sum(rate(function_requests_total[5m])) / count(up{job="functions"}) * 60`, perMinuteUnits},
		{`sum(rate(function_requests_total[5m])) / sum(increase(function_requests_total[1h]))`, nil},
		{`max by (database) (shop_outbox_pending_events)`, nil},
		{`shop:checkout_errors:ratio_rate1h`, nil},
	} {
		got, _ := wantUnits(tc.expr)
		if !slices.Equal(got, tc.want) {
			t.Errorf("wantUnits(%s) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}
