package deploycheck

import (
	"encoding/json"
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

// codeMetrics are the shop's own metrics (shop_*, and fnserve's
// function_*) as the code defines them, prometheus.New…(Opts{Name: …}, and
// for a …Vec its label names).
func codeMetrics(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(root(t), func(path string, d fs.DirEntry, err error) error {
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
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
						if lit, ok := kv.Value.(*ast.BasicLit); ok {
							name, _ = strconv.Unquote(lit.Value)
						}
					}
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
		var dash struct {
			Panels []struct {
				Targets []struct{ Expr string } `json:"targets"`
			} `json:"panels"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatal(err)
		}
		for _, p := range dash.Panels {
			for _, tg := range p.Targets {
				out[filepath.Base(f)] = append(out[filepath.Base(f)], tg.Expr)
			}
		}
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

// Every shop_* and function_* series the alert rules, the dashboards and the
// promtool tests read is one the code defines, and every label they select
// it by is one of its labels or a label Prometheus's target gives it (job,
// instance, function; le for a histogram's buckets). A metric renamed in the
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
			for _, m := range readMetric.FindAllStringSubmatch(labelValue.ReplaceAllString(expr, `$1""`), -1) {
				name, sel := m[1], m[2]
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
				labels, ok := defined[base]
				if !ok {
					t.Errorf("%s reads %s, which no code defines: %s", f, name, expr)
					continue
				}
				seen++
				for _, l := range selectorLabel.FindAllStringSubmatch(sel, -1) {
					if !slices.Contains(labels, l[1]) && !slices.Contains(extra, l[1]) {
						t.Errorf("%s selects %s by %q, not one of its labels %v: %s", f, name, l[1], append(slices.Clone(labels), extra...), expr)
					}
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no shop_* or function_* series read by the rules, dashboards or promtool tests")
	}
}
