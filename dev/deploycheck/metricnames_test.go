package deploycheck

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// eachCodeFile calls fn with the path and source of every Go file of the
// repository but the tests, the build contexts and the local runtime's
// state, and returns the first error.
func eachCodeFile(t *testing.T, fn func(path string, src []byte) error) error {
	t.Helper()
	return filepath.WalkDir(root(t), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".local" || d.Name() == "build") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return fn(path, src)
	})
}

// codeMetrics are the shop's own metrics (shop_*, and fnserve's
// function_*) as the code defines them, prometheus.New…(Opts{Name: …}, and
// for a …Vec its label names). An Opts whose Name is not a string literal,
// or that sets Namespace or Subsystem (which prefix the name), fails the
// test: the checks built on this would not see that metric at all.
func codeMetrics(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := eachCodeFile(t, func(path string, src []byte) error {
		if !strings.Contains(string(src), "prometheus.New") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" || !strings.HasPrefix(sel.Sel.Name, "New") {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			name := ""
			for _, el := range opts.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				k, ok := kv.Key.(*ast.Ident)
				if !ok {
					continue
				}
				switch k.Name {
				case "Name":
					if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						name, _ = strconv.Unquote(lit.Value)
					} else {
						t.Errorf("%s: a metric's Name is not a string literal: the metric checks cannot read it", path)
					}
				case "Namespace", "Subsystem":
					t.Errorf("%s: a metric sets %s: the metric checks read its Name alone", path, k.Name)
				}
			}
			if !strings.HasPrefix(name, "shop_") && !strings.HasPrefix(name, "function_") {
				return true
			}
			labels := []string{}
			if strings.HasSuffix(sel.Sel.Name, "Vec") && len(call.Args) > 1 {
				if list, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, el := range list.Elts {
						if lit, ok := el.(*ast.BasicLit); ok {
							l, _ := strconv.Unquote(lit.Value)
							labels = append(labels, l)
						}
					}
				}
			}
			out[name] = labels
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readMetric is a shop_* or function_* series a query names (not after ":",
// a recording rule's name), with its selector when it has one.
var readMetric = regexp.MustCompile(`(?:^|[^:\w])((?:shop|function)_[a-z0-9_]+)\b(\{[^}]*\})?`)

// labelValue is a matcher's value, which may name anything (a database
// called shop_orders): blanked before the series are looked for.
var labelValue = regexp.MustCompile(`(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"`)

// selectorLabel is a label name a selector matches on.
var selectorLabel = regexp.MustCompile(`(\w+)\s*(?:=~|!~|!=|=)`)

// seriesRead are the queries of the alert rules and the dashboards, and the
// input series and queries of the promtool tests, by file.
func seriesRead(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string } `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(read(t, "monitoring/rules/shop.yml"), &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["monitoring/rules/shop.yml"] = append(out["monitoring/rules/shop.yml"], r.Expr)
		}
	}
	dashboards, _ := filepath.Glob(filepath.Join(root(t), "monitoring", "grafana", "dashboards", "*.json"))
	for _, f := range dashboards {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		exprs, err := panelExprs(b)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		out[filepath.Base(f)] = append(out[filepath.Base(f)], exprs...)
	}
	for _, f := range ruleTests(t) {
		var tests struct {
			Tests []struct {
				InputSeries []struct {
					Series string `yaml:"series"`
				} `yaml:"input_series"`
				PromQLExprTest []struct {
					Expr string `yaml:"expr"`
				} `yaml:"promql_expr_test"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(read(t, f), &tests); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range tests.Tests {
			for _, s := range tc.InputSeries {
				out[f] = append(out[f], s.Series)
			}
			for _, e := range tc.PromQLExprTest {
				out[f] = append(out[f], e.Expr)
			}
		}
	}
	return out
}

// grouping is a clause naming labels: an aggregation's by (…) or
// without (…), a binary operator's on (…), ignoring (…), group_left (…) or
// group_right (…).
var grouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)`)

// groupScope is the part of expr whose series a grouping clause at
// [start, end) names labels of: an aggregation's argument, before or after
// its by (…) or without (…); a binary operator's whole expression.
func groupScope(expr string, start, end int, clause string) string {
	if clause != "by" && clause != "without" {
		return expr
	}
	if rest := strings.TrimLeft(expr[end:], " \t\n"); strings.HasPrefix(rest, "(") {
		from := len(expr) - len(rest)
		for i, d := from, 0; i < len(expr); i++ {
			switch expr[i] {
			case '(':
				d++
			case ')':
				d--
				if d == 0 {
					return expr[from : i+1]
				}
			}
		}
		return expr[from:]
	}
	if before := strings.TrimRight(expr[:start], " \t\n"); strings.HasSuffix(before, ")") {
		for i, d := len(before)-1, 0; i >= 0; i-- {
			switch before[i] {
			case ')':
				d++
			case '(':
				d--
				if d == 0 {
					return before[i:]
				}
			}
		}
	}
	return expr
}

// metricLabels are the labels a series called name may carry: its metric's
// own and its target's (job, instance, function; le for a histogram's
// buckets); ok is false when no code defines it.
func metricLabels(defined map[string][]string, name string) (labels []string, ok bool) {
	base, extra := name, []string{"job", "instance", "function"}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if b, ok := strings.CutSuffix(name, suffix); ok {
			if _, hist := defined[b]; hist {
				base = b
				if suffix == "_bucket" {
					extra = append(extra, "le")
				}
			}
		}
	}
	own, ok := defined[base]
	if !ok {
		return nil, false
	}
	return append(slices.Clone(own), extra...), true
}

// seriesProblems are the shop_* and function_* series expr (of file) reads
// that the code does not define (defined: codeMetrics), or names a label of
// that they do not have, in a selector or a grouping clause; seen counts
// the series it reads that the code defines. A grouping clause's label is
// one of some shop series in its scope (groupScope), unless the scope
// reads none (a recording rule's series, Kong's, label_replace's).
func seriesProblems(defined map[string][]string, file, expr string) (problems []string, seen int) {
	blank := labelValue.ReplaceAllString(expr, `$1""`)
	for _, m := range readMetric.FindAllStringSubmatch(blank, -1) {
		name, sel := m[1], m[2]
		labels, ok := metricLabels(defined, name)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s reads %s, which no code defines: %s", file, name, expr))
			continue
		}
		seen++
		for _, l := range selectorLabel.FindAllStringSubmatch(sel, -1) {
			if !slices.Contains(labels, l[1]) {
				problems = append(problems, fmt.Sprintf("%s selects %s by %q, not one of its labels %v: %s", file, name, l[1], labels, expr))
			}
		}
	}
	for _, g := range grouping.FindAllStringSubmatchIndex(blank, -1) {
		clause := blank[g[2]:g[3]]
		var names, labels []string
		for _, m := range readMetric.FindAllStringSubmatch(groupScope(blank, g[0], g[1], clause), -1) {
			if l, ok := metricLabels(defined, m[1]); ok {
				names = append(names, m[1])
				labels = append(labels, l...)
			}
		}
		if len(names) == 0 {
			continue
		}
		for l := range strings.SplitSeq(blank[g[4]:g[5]], ",") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(labels, l) {
				problems = append(problems, fmt.Sprintf("%s groups by %q in %s (…), a label of none of %v: %s", file, l, clause, names, expr))
			}
		}
	}
	return problems, seen
}

// Every shop_* and function_* series the alert rules, the dashboards and the
// promtool tests read is one the code defines, and every label they select
// it by is one of its labels or a label Prometheus's target gives it (job,
// instance, function; le for a histogram's buckets), as is every label
// they group or match it by (by, without, on, ignoring, group_left,
// group_right), panels inside rows included. A metric renamed in the
// code, or a label misspelt in a rule, empties the query for good; a
// promtool test fed a series the code never serves tests an alert on data
// that cannot exist. The live tests (tests/integration, make integration)
// find an empty query only where they can feed it; this one needs nothing.
func TestEveryShopSeriesReadIsOneTheCodeServes(t *testing.T) {
	defined := codeMetrics(t)
	if len(defined) < 10 {
		t.Fatalf("found %d metrics in the code, expected at least 10: is the parsing stale?", len(defined))
	}
	seen := 0
	for f, exprs := range seriesRead(t) {
		for _, expr := range exprs {
			problems, n := seriesProblems(defined, f, expr)
			for _, p := range problems {
				t.Error(p)
			}
			seen += n
		}
	}
	if seen == 0 {
		t.Fatal("no shop_* or function_* series read by the rules, dashboards or promtool tests")
	}
}

// recordedName is a recording rule's series a query reads
// (level:metric:operations), not after a word character or a colon (a
// subquery's [1h:5m] is no name); label values are blanked first.
var recordedName = regexp.MustCompile(`(?:^|[^:\w])([a-zA-Z_]\w*:[\w:]*\w)`)

// Every recording rule's series (a name with a colon) the alert rules, the
// dashboards and the promtool tests read is a recording rule of
// monitoring/rules/shop.yml. TestEveryShopSeriesReadIsOneTheCodeServes
// reads no such name: a panel reading a misspelt or removed rule shows "No
// data" for good, noticed only by make integration's Prometheus.
func TestEveryRecordedSeriesReadIsARule(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct{ Record string } `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(read(t, "monitoring/rules/shop.yml"), &rules); err != nil {
		t.Fatal(err)
	}
	records := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records[r.Record] = true
			}
		}
	}
	if len(records) == 0 {
		t.Fatal("no recording rule in monitoring/rules/shop.yml")
	}
	seen := 0
	for f, exprs := range seriesRead(t) {
		for _, expr := range exprs {
			for _, name := range recordedNames(expr) {
				seen++
				if !records[name] {
					t.Errorf("%s reads %s, which no recording rule records: %s", f, name, expr)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no recording rule's series read by the rules, dashboards or promtool tests")
	}
}

// recordedNames are the recording rules' series expr reads.
func recordedNames(expr string) []string {
	var out []string
	for _, m := range recordedName.FindAllStringSubmatch(labelValue.ReplaceAllString(expr, `$1""`), -1) {
		out = append(out, m[1])
	}
	return out
}

// The recorded-series check finds a rule's name in a query, not a
// subquery's range, a label value or a name after a colon.
func TestRecordedNamesInQueries(t *testing.T) {
	for expr, want := range map[string][]string{
		`shop:checkout_errors:ratio_rate1h > (14.4 * 0.005)`:                   {"shop:checkout_errors:ratio_rate1h"},
		`max_over_time(shop:edge_requests:rate5m{code=~"5.."}[1h:5m])`:         {"shop:edge_requests:rate5m"},
		`sum(rate(shop_orders_total{instance=~"outbox-relay:.*"}[5m]))`:        nil,
		`sum by (function) (shop:function_requests:rate5m) / shop:nope:rate5m`: {"shop:function_requests:rate5m", "shop:nope:rate5m"},
		`rate(function_requests_total[5m:1m])`:                                 nil,
	} {
		if got := recordedNames(expr); !slices.Equal(got, want) {
			t.Errorf("recordedNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// The series check knows a query made wrong on purpose, and a right one: a
// misspelt metric in a panel inside a row, and a misspelt label in a
// selector or in by (…), without (…), on (…), ignoring (…), group_left (…)
// or group_right (…) of a query.
func TestSeriesCheckOnQueriesMadeWrong(t *testing.T) {
	defined := codeMetrics(t)
	const runs = `rate(shop_recovery_runs_total{job="functions"}[5m])`
	panel := func(expr string) string {
		b, err := json.Marshal(expr)
		if err != nil {
			t.Fatal(err)
		}
		return `{"title": "P", "targets": [{"refId": "A", "expr": ` + string(b) + `}]}`
	}
	for _, tc := range []struct {
		name, panels string
		want         string // a problem naming this, or none when empty
	}{
		{"right", panel(`sum by (result) (` + runs + `)`), ""},
		{"right, grouped after", panel(`sum(` + runs + `) by (result, function)`), ""},
		{"right, a label of another series", panel(`sum by (function, code) (label_replace(rate(kong_http_requests_total[5m]), "function", "$1", "service", "(.+)"))`), ""},
		{"right, matching", panel(`sum by (result) (` + runs + `) / on (result) group_left () sum by (result) (rate(shop_recovered_orders_total[5m]))`), ""},
		{"a misspelt selector label", panel(`sum(rate(shop_recovery_runs_total{reslt="error"}[5m]))`), `by "reslt"`},
		{"a misspelt metric at the top", panel(`sum(rate(shop_reservation_conflict_total[5m]))`), "shop_reservation_conflict_total, which no code defines"},
		{"a misspelt metric in a collapsed row", `{"type": "row", "title": "R", "panels": [` + panel(`sum(rate(shop_reservation_conflict_total[5m]))`) + `]}`, "shop_reservation_conflict_total, which no code defines"},
		{"a misspelt label in by", panel(`sum by (reslt) (` + runs + `)`), `by "reslt"`},
		{"a misspelt label in by after", panel(`sum(` + runs + `) by (function, reslt)`), `by "reslt"`},
		{"a misspelt label in without", panel(`sum without (reslt) (` + runs + `)`), `by "reslt"`},
		{"a misspelt label in on", panel(`sum by (result) (` + runs + `) / on (reslt) sum by (result) (rate(shop_recovered_orders_total[5m]))`), `by "reslt"`},
		{"a misspelt label in ignoring", panel(`sum by (result) (` + runs + `) / ignoring (reslt) sum by (result) (rate(shop_recovered_orders_total[5m]))`), `by "reslt"`},
		{"a misspelt label in group_left", panel(`sum by (result) (` + runs + `) / on (result) group_left (reslt) sum by (result) (rate(shop_recovered_orders_total[5m]))`), `by "reslt"`},
		{"a misspelt label in group_right", panel(`sum by (result) (` + runs + `) / on (result) group_right (reslt) sum by (result) (rate(shop_recovered_orders_total[5m]))`), `by "reslt"`},
		{"a label of another metric in by", panel(`sum by (step) (` + runs + `)`), `by "step"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exprs, err := panelExprs([]byte(`{"panels": [` + tc.panels + `]}`))
			if err != nil {
				t.Fatal(err)
			}
			if len(exprs) != 1 {
				t.Fatalf("queries %q, want the one the panel holds", exprs)
			}
			problems, _ := seriesProblems(defined, "made.json", exprs[0])
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Errorf("problems %q, want none", problems)
			case tc.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], tc.want)):
				t.Errorf("problems %q, want one naming %q", problems, tc.want)
			}
		})
	}
}
