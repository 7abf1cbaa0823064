package deploycheck

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// ruleJob is a job an expression of the rules selects.
var ruleJob = regexp.MustCompile(`\bjob="([^"]+)"`)

// kubeMonitoring is the section "Monitoring" of docs/deploy-kubernetes.md
// and the YAML of its example scrape configuration.
func kubeMonitoring(t *testing.T) (section, example string) {
	t.Helper()
	doc := string(read(t, "docs/deploy-kubernetes.md"))
	_, rest, ok := strings.Cut(doc, "\n## Monitoring\n")
	if !ok {
		t.Fatal(`docs/deploy-kubernetes.md has no section "## Monitoring"`)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	_, block, ok := strings.Cut(rest, "```yaml\n")
	if !ok {
		t.Fatal(`docs/deploy-kubernetes.md, "Monitoring": no example scrape configuration (a yaml block)`)
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatal(`docs/deploy-kubernetes.md, "Monitoring": the yaml block does not end`)
	}
	return rest, block
}

// scrapeJob is the part of a scrape configuration this test compares.
type scrapeJob struct {
	JobName     string              `yaml:"job_name"`
	MetricsPath string              `yaml:"metrics_path"`
	Params      map[string][]string `yaml:"params"`
}

// TestTheKubernetesGuideScrapesEveryJobTheRulesRead: the Kubernetes guide's
// "Monitoring" tells how to scrape every job an alert or a recording rule of
// monitoring/rules/shop.yml selects (an example job, or the job named in
// its text, as for the exporters of managed services): a job it leaves out
// has alerts that never fire, and its ...MetricsDown warns for ever. Each
// job of the example that monitoring/prometheus.yml also has reads the same
// path with the same parameters (the detailed RabbitMQ endpoint's
// families). (promtool cannot check the example: Debian's is built without
// Kubernetes service discovery.)
func TestTheKubernetesGuideScrapesEveryJobTheRulesRead(t *testing.T) {
	section, example := kubeMonitoring(t)
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string } `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(read(t, "monitoring/rules/shop.yml"), &rules); err != nil {
		t.Fatal(err)
	}
	jobs := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, m := range ruleJob.FindAllStringSubmatch(r.Expr, -1) {
				jobs[m[1]] = true
			}
		}
	}
	if len(jobs) < 5 {
		t.Fatalf("the rules select the jobs %v: is the pattern stale?", jobs)
	}

	var ex struct {
		ScrapeConfigs []scrapeJob `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte("scrape_configs:\n"+example), &ex); err != nil {
		t.Fatalf(`docs/deploy-kubernetes.md, "Monitoring": the example: %v`, err)
	}
	inExample := map[string]scrapeJob{}
	for _, j := range ex.ScrapeConfigs {
		inExample[j.JobName] = j
	}
	for _, job := range slices.Sorted(maps.Keys(jobs)) {
		if _, ok := inExample[job]; !ok && !strings.Contains(section, "`"+job+"`") {
			t.Errorf(`docs/deploy-kubernetes.md, "Monitoring": the rules read job %q, which the example does not scrape and the text never names`, job)
		}
	}

	var faasd struct {
		ScrapeConfigs []scrapeJob `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(read(t, "monitoring/prometheus.yml"), &faasd); err != nil {
		t.Fatal(err)
	}
	for _, f := range faasd.ScrapeConfigs {
		k, ok := inExample[f.JobName]
		if !ok || (f.MetricsPath == "" && f.Params == nil) {
			continue
		}
		if diff := cmp.Diff(f, k); diff != "" {
			t.Errorf(`docs/deploy-kubernetes.md, "Monitoring": job %s reads another endpoint than monitoring/prometheus.yml's (-prometheus.yml +guide):
%s`, f.JobName, diff)
		}
	}
}
