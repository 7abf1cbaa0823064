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

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/internal/proctest"
)

// replicatedPackages are the packages of the processes that may run as
// several replicas of one another (docs/deploy-kubernetes.md, "Connectors":
// the outbox relay and the RabbitMQ connector are safe with more), each
// replica a target of its own that reports the same shared state (a
// database's outbox, a queue's depth).
var replicatedPackages = []string{"internal/relay", "internal/connector"}

// sharedGauge is a gauge those packages define: a figure every replica
// measures alike, not one of its own.
var sharedGauge = regexp.MustCompile(`prometheus\.NewGauge(?:Vec)?\(prometheus\.GaugeOpts\{\s*Name:\s*"([a-z0-9_]+)"`)

// replicatedGauges are the gauges of replicatedPackages, from their code.
func replicatedGauges(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, dir := range replicatedPackages {
		files, err := filepath.Glob(filepath.Join(root(t), dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range sharedGauge.FindAllSubmatch(b, -1) {
				out = append(out, string(m[1]))
			}
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	for _, want := range []string{"shop_dead_letters", "shop_outbox_pending_events"} {
		if !slices.Contains(out, want) {
			t.Fatalf("the gauges of %v are %q, without %s: is the pattern stale?", replicatedPackages, out, want)
		}
	}
	return out
}

// panelQuery is one query of a dashboard panel.
type panelQuery struct{ where, expr string }

// dashboardQueries are the queries of every panel, nested ones included, of
// every dashboard of monitoring/grafana/dashboards, with the overview's
// function variable as Grafana sends "All".
func dashboardQueries(t *testing.T) []panelQuery {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), "monitoring", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard: %v", err)
	}
	vars := strings.NewReplacer("${function:regex}", ".*", "${function}", ".*", "$function", ".*")
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var out []panelQuery
	var walk func(file string, ps []json.RawMessage)
	walk = func(file string, ps []json.RawMessage) {
		for _, r := range ps {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			for i, tg := range p.Targets {
				q := vars.Replace(tg.Expr)
				if strings.Contains(q, "$") {
					t.Fatalf("%s: panel %q: query %q has a Grafana variable this test does not know", file, p.Title, tg.Expr)
				}
				out = append(out, panelQuery{where: fmt.Sprintf("%s: panel %q (query %d)", file, p.Title, i+1), expr: q})
			}
			walk(file, p.Panels)
		}
	}
	for _, f := range files {
		var dash struct {
			Panels []json.RawMessage `json:"panels"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		walk(filepath.Base(f), dash.Panels)
	}
	return out
}

// TestDashboardsCountSharedStateOnceWithTwoReplicas: a panel that reads a
// gauge of the outbox relay or the RabbitMQ connector shows the same figure
// whether one replica reports it or two. Every replica measures the same
// outbox and the same queues, and the Kubernetes scrape keeps the replicas
// apart by a pod label (docs/deploy-kubernetes.md, "Monitoring"): a sum
// over them counts every dead letter and every pending event once per
// replica. promtool evaluates each such query twice, over one replica's
// series and over two identical replicas' (the gauges renamed), and the two
// results must be equal.
func TestDashboardsCountSharedStateOnceWithTwoReplicas(t *testing.T) {
	pt := proctest.Binary(t, "Debian: apt-get install prometheus", "promtool")
	gauges := replicatedGauges(t)
	const twice = "_of_two_replicas"
	name := regexp.MustCompile(`\b(` + strings.Join(gauges, "|") + `)\b`)

	type sampleSet struct {
		Labels string  `yaml:"labels"`
		Value  float64 `yaml:"value"`
	}
	type exprTest struct {
		Expr       string      `yaml:"expr"`
		EvalTime   string      `yaml:"eval_time"`
		ExpSamples []sampleSet `yaml:"exp_samples"`
	}
	type series struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	}
	var input []series
	for _, g := range gauges {
		// Labels every gauge of these packages may carry; the scrape's
		// job and instance, alike for both replicas, and the pod apart.
		labels := `job="connectors", instance="replica:9464", database="orders", function="notify-user"`
		input = append(input,
			series{Series: g + `{` + labels + `, pod="one"}`, Values: "3+0x10"},
			series{Series: g + twice + `{` + labels + `, pod="one"}`, Values: "3+0x10"},
			series{Series: g + twice + `{` + labels + `, pod="two"}`, Values: "3+0x10"})
	}
	var tests []exprTest
	var checked []string
	for _, q := range dashboardQueries(t) {
		if !name.MatchString(q.expr) {
			continue
		}
		checked = append(checked, q.where)
		two := name.ReplaceAllString(q.expr, "${1}"+twice)
		// Equal sums return one series (count 1); unequal ones, or a
		// query with no result over one replica, return none.
		tests = append(tests, exprTest{
			Expr:       fmt.Sprintf("count(sum(%s) == sum(%s))", q.expr, two),
			EvalTime:   "5m",
			ExpSamples: []sampleSet{{Labels: "{}", Value: 1}},
		})
		t.Logf("%s: %s", q.where, strings.Join(strings.Fields(q.expr), " "))
	}
	if len(tests) == 0 {
		t.Fatalf("no dashboard panel reads a gauge of %v (%q): is the pattern stale?", replicatedPackages, gauges)
	}
	doc := map[string]any{
		"rule_files":          []string{},
		"evaluation_interval": "1m",
		"tests": []map[string]any{{
			"interval":         "1m",
			"input_series":     input,
			"promql_expr_test": tests,
		}},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "replicas_test.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, dir, pt, "test", "rules", "replicas_test.yml"); err != nil {
		t.Errorf("a panel shows a different figure with two replicas of a connector than with one (its exp_samples value 1 is missing: the two sums differ); the panels checked:\n%s\npromtool: %v\n%s",
			strings.Join(checked, "\n"), err, out)
	}
}
