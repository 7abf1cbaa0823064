package deploycheck

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/connector"
	"github.com/shopfaas/shop/internal/edkey"
	"github.com/shopfaas/shop/internal/proctest"
)

func root(tb testing.TB) string {
	tb.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func read(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(root(tb), rel))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func realCompose(tb testing.TB) Compose {
	tb.Helper()
	c, err := LoadCompose(read(tb, "docker-compose.yml"))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func runTool(t *testing.T, dir string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func errStrings(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func wantFindings(t *testing.T, what string, errs []error, substrings ...string) {
	t.Helper()
	if len(errs) != len(substrings) {
		t.Fatalf("%s: got %d findings %q, want %d", what, len(errs), errStrings(errs), len(substrings))
	}
	for i, s := range substrings {
		if !strings.Contains(errs[i].Error(), s) {
			t.Errorf("%s: finding %q lacks %q", what, errs[i], s)
		}
	}
}

func TestDockerComposeConfig(t *testing.T) {
	dc := proctest.Binary(t, "Debian: apt-get install docker-compose", "docker-compose")
	dir := t.TempDir() // no .env file of the project may leak in
	if out, err := runTool(t, dir, dc, "-f", filepath.Join(root(t), "docker-compose.yml"), "config", "-q"); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	broken := strings.Replace(string(read(t, "docker-compose.yml")), "    expose: [\"6379\"]\n", "    expose: [\"6379\"]\n    restart_policy: always\n", 1)
	if !strings.Contains(broken, "restart_policy") {
		t.Fatal("fixture: redis no longer exposes 6379")
	}
	f := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(f, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, dir, dc, "-f", f, "config", "-q"); err == nil {
		t.Fatalf("docker-compose config accepted an unknown key:\n%s", out)
	}
}

func TestPromtool(t *testing.T) {
	pt := proctest.Binary(t, "Debian: apt-get install prometheus", "promtool")
	r := root(t)
	for _, args := range [][]string{
		{"check", "config", "monitoring/prometheus.yml"},
		{"check", "config", "monitoring/prometheus.ce.yml"},
		{"check", "rules", "monitoring/rules/shop.yml"},
		append([]string{"test", "rules"}, ruleTests(t)...),
	} {
		if out, err := runTool(t, r, pt, args...); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// A broken rule and a broken config fail.
	dir := t.TempDir()
	bad := strings.Replace(string(read(t, "monitoring/rules/shop.yml")), "> 0.05", "> > 0.05", 1)
	if err := os.WriteFile(filepath.Join(dir, "bad.yml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, dir, pt, "check", "rules", "bad.yml"); err == nil {
		t.Errorf("promtool accepted a broken rule:\n%s", out)
	}
	badCfg := strings.Replace(string(read(t, "monitoring/prometheus.yml")), "scrape_interval:", "scrape_intervall:", 1)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(badCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, dir, pt, "check", "config", "prometheus.yml"); err == nil {
		t.Errorf("promtool accepted an unknown key:\n%s", out)
	}
}

// ruleTests lists the promtool test files, monitoring/rules/tests/*_test.yml
// (relative to the root): shop_test.yml (the alerts) and records_test.yml
// (the recording rules) evaluate every minute, days_test.yml, whose groups
// last days, every 10 minutes.
func ruleTests(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(root(tb), "monitoring", "rules", "tests", "*_test.yml"))
	if err != nil {
		tb.Fatal(err)
	}
	for i, f := range files {
		files[i] = filepath.Join("monitoring", "rules", "tests", filepath.Base(f))
	}
	for _, want := range []string{"shop_test.yml", "days_test.yml", "records_test.yml"} {
		if !slices.Contains(files, filepath.Join("monitoring", "rules", "tests", want)) {
			tb.Fatalf("monitoring/rules/tests/%s is missing (test files: %q)", want, files)
		}
	}
	return files
}

// TestEveryAlertIsTestedFiringAndNot: the promtool tests (ruleTests, run by
// TestPromtool) have, for every alert of monitoring/rules/shop.yml, a
// case where it fires and one where it does not, and names no alert the
// rules lack.
func TestEveryAlertIsTestedFiringAndNot(t *testing.T) {
	rules := shopRules(t)
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range ruleTestCases(t) {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if !firing[r.Alert] {
				t.Errorf("alert %s: no promtool test where it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("alert %s: no promtool test where it stays quiet", r.Alert)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatal("no alert in monitoring/rules/shop.yml")
	}
	for name := range firing {
		if !alerts[name] {
			t.Errorf("the promtool tests name alert %s, which the rules lack", name)
		}
	}
	for name := range quiet {
		if !alerts[name] {
			t.Errorf("the promtool tests name alert %s, which the rules lack", name)
		}
	}
}

// TestEveryRecordingRuleIsTested: the promtool tests (ruleTests, run by
// TestPromtool) have, for every recording rule of monitoring/rules/shop.yml,
// a promql_expr_test that reads the rule's series alone (its name, with or
// without a selector) and expects samples from its input series, and read no
// recording rule the rules lack. An alert's test reads a rule only through a
// threshold: a ratio off by a factor can still cross it (until 2026-12-08
// fifteen of the seventeen rules had no test of their value).
func TestEveryRecordingRuleIsTested(t *testing.T) {
	rules := shopRules(t)
	tested := map[string]bool{}
	for _, tc := range ruleTestCases(t) {
		for _, e := range tc.PromQLExprTest {
			if m := recordRead.FindStringSubmatch(e.Expr); m != nil && len(e.ExpSamples) > 0 {
				tested[m[1]] = true
			}
		}
	}
	records := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record == "" {
				continue
			}
			records[r.Record] = true
			if !tested[r.Record] {
				t.Errorf("recording rule %s: no promtool test of the value it records (a promql_expr_test of %s with exp_samples)", r.Record, r.Record)
			}
		}
	}
	if len(records) == 0 {
		t.Fatal("no recording rule in monitoring/rules/shop.yml")
	}
	for _, name := range slices.Sorted(maps.Keys(tested)) {
		if !records[name] {
			t.Errorf("the promtool tests read recording rule %s, which the rules lack", name)
		}
	}
}

// ruleFile is monitoring/rules/shop.yml: each rule is a recording rule
// (Record) or an alert (Alert), with its expression and annotations.
type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// shopRules is monitoring/rules/shop.yml, read and parsed.
func shopRules(tb testing.TB) ruleFile {
	tb.Helper()
	var rules ruleFile
	if err := yaml.Unmarshal(read(tb, "monitoring/rules/shop.yml"), &rules); err != nil {
		tb.Fatal(err)
	}
	return rules
}

// ruleTestCase is one test of a promtool test file (ruleTests): its alert
// cases and its expression cases.
type ruleTestCase struct {
	AlertRuleTest []struct {
		Alertname string `yaml:"alertname"`
		ExpAlerts []any  `yaml:"exp_alerts"`
	} `yaml:"alert_rule_test"`
	PromQLExprTest []struct {
		Expr       string `yaml:"expr"`
		ExpSamples []any  `yaml:"exp_samples"`
	} `yaml:"promql_expr_test"`
}

// ruleTestCases is every test of every promtool test file, each file parsed
// on its own.
func ruleTestCases(tb testing.TB) []ruleTestCase {
	tb.Helper()
	var all []ruleTestCase
	for _, f := range ruleTests(tb) {
		var tests struct {
			Tests []ruleTestCase `yaml:"tests"`
		}
		if err := yaml.Unmarshal(read(tb, f), &tests); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		all = append(all, tests.Tests...)
	}
	return all
}

// recordRead is a promql_expr_test's expr that reads one recording rule's
// series alone (level:metric:operations, with or without a selector).
var recordRead = regexp.MustCompile(`^\s*([a-zA-Z_]\w*:[\w:]*)\s*(?:\{[^}]*\})?\s*$`)

// readsMetric reports whether the queries read metric by its whole name, or a
// histogram's series of it (_bucket, _count, _sum).
func readsMetric(queries, metric string) bool {
	return regexp.MustCompile(`(?:^|[^:\w])` + regexp.QuoteMeta(metric) + `(?:_bucket|_count|_sum)?\b`).MatchString(queries)
}

// alertMetric is a metric an alert reads, from the sources the rules'
// header names (fnserve's function_*, the shop's shop_*, Kong's, RabbitMQ's
// and the exporters'); a name followed by "(" is a function's, one after
// ":" part of a recording rule's (shop:function_requests:rate5m).
var alertMetric = regexp.MustCompile(`(?:^|[^:\w])((?:shop|function|kong|rabbitmq|pg|redis|node)_\w+)\b\s*(\(?)`)

// TestEveryAlertLinksItsRunbook: every alert of monitoring/rules/shop.yml
// has a runbook_url to a page of docs/runbooks/ in this repository, and that
// page names the alert, so whoever is paged lands where it is explained,
// and every metric the alert reads (also through a recording rule; a
// histogram's _bucket and _count by its own name), so the page says what
// the alert measured and where to look: CompensationsOwed's page named it
// only in its list of alerts.
func TestEveryAlertLinksItsRunbook(t *testing.T) {
	const prefix = "https://github.com/shopfaas/shop/blob/main/"
	rules := shopRules(t)
	records := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records[r.Record] = r.Expr
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			url := r.Annotations["runbook_url"]
			page, ok := strings.CutPrefix(url, prefix)
			page, _, _ = strings.Cut(page, "#") // its section: TestAnAlertLinksItsRunbookSection
			if !ok || !strings.HasPrefix(page, "docs/runbooks/") || !strings.HasSuffix(page, ".md") {
				t.Errorf("alert %s: runbook_url %q is not %sdocs/runbooks/<page>.md", r.Alert, url, prefix)
				continue
			}
			text, err := os.ReadFile(filepath.Join(root(t), page))
			if err != nil {
				t.Errorf("alert %s: its runbook: %v", r.Alert, err)
				continue
			}
			if !regexp.MustCompile(`\b` + r.Alert + `\b`).Match(text) {
				t.Errorf("alert %s: its runbook %s never names it", r.Alert, page)
			}
			expr := r.Expr
			for name, e := range records {
				if strings.Contains(r.Expr, name) {
					expr += "\n" + e
				}
			}
			read := map[string]bool{}
			for _, m := range alertMetric.FindAllStringSubmatch(expr, -1) {
				if m[2] != "" {
					continue // histogram_quantile(, label_replace(, …
				}
				name := m[1]
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && strings.HasSuffix(base, "_seconds") {
						name = base
					}
				}
				read[name] = true
			}
			for _, name := range slices.Sorted(maps.Keys(read)) {
				if !regexp.MustCompile(`\b` + name + `(_bucket|_count|_sum)?\b`).Match(text) {
					t.Errorf("alert %s: its runbook %s never names %s, which it reads", r.Alert, page, name)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert in monitoring/rules/shop.yml")
	}
}

// TestAnAlertLinksItsRunbookSection: every alert's runbook_url names a
// section of its page (a #fragment, GitHub's anchor of one of its headings),
// and an alert whose page has a section headed with its name links that
// one, so whoever is paged lands on the steps for it, not at the top of a
// page that serves several alerts. Until 2026-12-08 DeadLetters linked
// docs/runbooks/dead-letters.md's top and its description sent the
// operator to the RabbitMQ UI; the alerts of datastores.md and rabbitmq.md
// linked their pages' tops although each had its own section. A page that
// serves several alerts has a section for each.
func TestAnAlertLinksItsRunbookSection(t *testing.T) {
	const prefix = "https://github.com/shopfaas/shop/blob/main/"
	rules := shopRules(t)
	sections := 0
	pageAlerts, sectioned := map[string][]string{}, map[string][]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			page, fragment, _ := strings.Cut(strings.TrimPrefix(r.Annotations["runbook_url"], prefix), "#")
			text, err := os.ReadFile(filepath.Join(root(t), page))
			if err != nil {
				continue // TestEveryAlertLinksItsRunbook says why
			}
			anchors := map[string]bool{}
			own := ""
			hs := headings(string(text))
			for i, a := range pageAnchors(hs) {
				anchors[a] = true
				if own == "" && regexp.MustCompile(`\b`+r.Alert+`\b`).MatchString(hs[i]) {
					own = a
				}
			}
			// The DLQ's messages are read with the tool, which shows
			// each one's last status and error: the RabbitMQ UI's Get
			// messages counts a delivery against the quorum DLQ's limit.
			if d := r.Annotations["description"]; r.Alert == "DeadLetters" && (!strings.Contains(d, "deadletters inspect") || strings.Contains(d, "RabbitMQ UI")) {
				t.Errorf("alert DeadLetters: description %q, want it to name deadletters inspect, not the RabbitMQ UI", d)
			}
			pageAlerts[page] = append(pageAlerts[page], r.Alert)
			switch {
			case own != "":
				sections++
				sectioned[page] = append(sectioned[page], r.Alert)
				if fragment != own {
					t.Errorf("alert %s: runbook_url %q, want its section %s#%s", r.Alert, r.Annotations["runbook_url"], prefix+page, own)
				}
			case fragment == "":
				t.Errorf("alert %s: runbook_url %q names no section of its page", r.Alert, r.Annotations["runbook_url"])
			case !anchors[fragment]:
				t.Errorf("alert %s: %s has no heading #%s", r.Alert, page, fragment)
			}
		}
	}
	if sections == 0 {
		t.Fatal("no alert has a section of its own in docs/runbooks (dead-letters.md, datastores.md, rabbitmq.md have them)")
	}
	// A page that serves several alerts has a section for each, so its
	// link does not land at the top. Until 2026-12-08 function-errors.md,
	// outbox-lag.md, stuck-pending-order.md and checkout-slo.md were let
	// off, numbering their steps across their alerts.
	for page, alerts := range pageAlerts {
		if len(alerts) > 1 && len(sectioned[page]) < len(alerts) {
			t.Errorf("%s serves %d alerts (%s) but has a section for %d of them", page, len(alerts), strings.Join(alerts, ", "), len(sectioned[page]))
		}
	}
}

// headings are a Markdown page's ATX headings' texts, outside fenced code
// blocks: a shell comment in a ```sh block is no heading and has no anchor.
func headings(page string) []string {
	heading := regexp.MustCompile(`^#{1,6}[ \t]+(.+?)[ \t#]*$`)
	var out []string
	fenced := false
	for _, line := range strings.Split(page, "\n") {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fenced = !fenced
			continue
		}
		if m := heading.FindStringSubmatch(line); m != nil && !fenced {
			out = append(out, m[1])
		}
	}
	return out
}

// pageAnchors are the anchors GitHub gives a page's headings, in order: a
// heading whose anchor an earlier one has gets -1, -2, … after it, so a
// link to the second of two equal headings must name #…-1.
func pageAnchors(headings []string) []string {
	seen := map[string]int{}
	out := make([]string, 0, len(headings))
	for _, h := range headings {
		a := githubAnchor(h)
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		out = append(out, a)
	}
	return out
}

// markdownLink is an inline link, [text](target); its text alone is in a
// heading's anchor.
var markdownLink = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// Until 2026-12-08 a runbook link to the second of two equal headings
// named the first (GitHub's is #steps-1), and a heading with a link had the
// link's target in its anchor.
func TestAnchorsAreGitHubs(t *testing.T) {
	page := "# Runbook\n## Steps\n```sh\n# not a heading\n```\n## Steps\n### Steps\n" +
		"## See [DeadLetters](dead-letters.md#deadletters) first\n## `deadletters` replay_all, 2h!\n"
	got := pageAnchors(headings(page))
	want := []string{"runbook", "steps", "steps-1", "steps-2", "see-deadletters-first", "deadletters-replay_all-2h"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("anchors (-want +got):\n%s", diff)
	}
}

// githubAnchor is the anchor GitHub gives a Markdown heading: lower case,
// spaces as hyphens, punctuation other than - and _ dropped, a link's text
// only (pageAnchors adds the suffix of a repeated heading).
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(markdownLink.ReplaceAllString(heading, "$1")) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestComposeDeclaresWhatTheStackExpects is the contract between the compose
// file and the services' configuration.
func TestComposeDeclaresWhatTheStackExpects(t *testing.T) {
	c := realCompose(t)
	var prod struct {
		Environment map[string]string `yaml:"environment"`
	}
	if err := yaml.Unmarshal(read(t, "env/production.yml"), &prod); err != nil {
		t.Fatal(err)
	}
	eps := Endpoints(prod.Environment, "env/production.yml")
	var got []string
	for _, e := range eps {
		got = append(got, e.Host+":"+e.Port)
	}
	slices.Sort(got)
	got = slices.Compact(got)
	want := []string{"gateway:8080", "jaeger:4318", "meilisearch:7700", "postgres:5432", "redis:6379"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints of env/production.yml (-want +got):\n%s", diff)
	}
	for _, name := range []string{"outbox-relay", "rabbitmq-connector", "scheduler"} {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("no %s service", name)
			continue
		}
		eps = append(eps, Endpoints(s.Environment, "service "+name)...)
		// The shop's own processes read their secrets from SECRETS_DIR:
		// a secret copied into the environment by a shell command is in
		// /proc/<pid>/environ.
		if cmd := strings.Join(s.Command, " "); strings.Contains(cmd, "/secrets/") {
			t.Errorf("service %s copies a secret into its command line or environment (%s): read it from SECRETS_DIR", name, cmd)
		}
	}
	if errs := CheckEndpoints(c, eps); len(errs) > 0 {
		t.Errorf("undeclared endpoints:\n%s", strings.Join(errStrings(errs), "\n"))
	}
	for _, core := range []string{"gateway", "nats", "queue-worker", "prometheus", "postgres", "rabbitmq", "redis", "meilisearch", "kong", "jaeger", "grafana"} {
		if _, ok := c.Services[core]; !ok {
			t.Errorf("no %s service", core)
		}
	}
}

func TestComposeRules(t *testing.T) {
	c := realCompose(t)
	layout, err := SecretsLayout(read(t, "docs/deploy-faasd.md"))
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	errs = append(errs, CheckImagesPinned(c)...)
	errs = append(errs, CheckPublishedPorts(c, "kong")...)
	errs = append(errs, CheckVolumes(c)...)
	errs = append(errs, CheckSecretFiles(c, layout)...)
	errs = append(errs, CheckProjectFiles(c, root(t))...)
	errs = append(errs, CheckDependsOn(c)...)
	errs = append(errs, CheckCommands(c, Images)...)
	errs = append(errs, CheckUsers(c, Images)...)
	errs = append(errs, CheckSecretReads(c)...)
	if len(errs) > 0 {
		t.Errorf("docker-compose.yml:\n%s", strings.Join(errStrings(errs), "\n"))
	}
	if diff := cmp.Diff([]string{"127.0.0.1:8000:8000", "8443:8443"}, c.Services["kong"].Ports); diff != "" {
		t.Errorf("kong's ports (-want +got):\n%s", diff)
	}
	if !slices.Contains(c.Services["kong"].DependsOn, "gateway") {
		t.Error("kong must depend on gateway (it reads /etc/hosts once)")
	}
	if got := c.Services["gateway"].Ports; !slices.Equal(got, []string{"127.0.0.1:8080:8080"}) {
		t.Errorf("gateway ports %q, want 127.0.0.1:8080:8080 only", got)
	}
}

// nginx bounds a request's body as it arrives at the size the global
// request-size-limiting plugin allows: the plugin reads a chunked body whole
// before it measures it (Kong's request-size-limiting handler), and nginx's
// own client_max_body_size defaults to no limit, so an anonymous client
// could stream a body of any size to Kong's disk.
func TestKongBoundsBodiesAsTheyArrive(t *testing.T) {
	var kong struct {
		Plugins []struct {
			Name   string `yaml:"name"`
			Config struct {
				Size int    `yaml:"allowed_payload_size"`
				Unit string `yaml:"size_unit"`
			} `yaml:"config"`
		} `yaml:"plugins"`
	}
	if err := yaml.Unmarshal(read(t, "gateway/kong.yml"), &kong); err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, p := range kong.Plugins {
		if p.Name == "request-size-limiting" && p.Config.Unit == "kilobytes" {
			want = strconv.Itoa(p.Config.Size) + "k"
		}
	}
	if want == "" {
		t.Fatal("gateway/kong.yml has no global request-size-limiting plugin in kilobytes")
	}
	if got := realCompose(t).Services["kong"].Environment["KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE"]; got != want {
		t.Errorf("kong's KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE = %q, want %q (the global request-size-limiting size)", got, want)
	}
}

func TestKongVaultReferencesAreSet(t *testing.T) {
	c := realCompose(t)
	vars := KongVaultEnv(read(t, "gateway/kong.yml"))
	t.Logf("kong.yml vault variables: %v", vars)
	if errs := CheckKongVault(c, "kong", vars); len(errs) > 0 {
		t.Error(strings.Join(errStrings(errs), "\n"))
	}
	if errs := CheckKongVault(c, "kong", []string{"SHOP_NOT_SET"}); len(errs) != 1 {
		t.Errorf("an unset vault variable: %v, want one finding", errs)
	}
}

// Every timeout of a synchronous call outlasts the one inside it, for every
// function of both stack files in both environments, Kong's services and the
// connectors; and the check finds each broken link of a fixture.
func TestTimeoutsNest(t *testing.T) {
	var kong struct {
		Services []struct {
			Name        string `yaml:"name"`
			ReadTimeout *int   `yaml:"read_timeout"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(read(t, "gateway/kong.yml"), &kong); err != nil {
		t.Fatal(err)
	}
	kongRead := map[string]time.Duration{}
	for _, s := range kong.Services {
		if s.ReadTimeout == nil {
			t.Errorf("kong service %s: no read_timeout (Kong's default is 60 s)", s.Name)
			continue
		}
		kongRead[s.Name] = time.Duration(*s.ReadTimeout) * time.Millisecond
	}
	fns := map[string]FunctionTimeouts{}
	for _, shopEnv := range []string{"production", "development"} {
		for _, file := range []string{"stack.yml", "stack.ce.yml"} {
			s, err := stackfile.LoadEnv(filepath.Join(root(t), file), func(k string) string {
				if k == "SHOP_ENV" {
					return shopEnv
				}
				return ""
			})
			if err != nil {
				t.Fatal(err)
			}
			for name, fn := range s.Functions {
				env, err := stackfile.Environment(root(t), fn)
				if err != nil {
					t.Fatal(err)
				}
				var ft FunctionTimeouts
				for v, d := range map[string]*time.Duration{"exec_timeout": &ft.Exec, "write_timeout": &ft.Write} {
					if *d, err = WatchdogDuration(env[v]); err != nil {
						t.Errorf("%s %s %s: %v", file, shopEnv, name, err)
					}
				}
				fns[file+" "+shopEnv+" "+name] = ft
			}
		}
	}
	if len(fns) < 60 {
		t.Fatalf("read the timeouts of %d functions, want every function of both stacks in both environments", len(fns))
	}
	if errs := CheckTimeouts(realCompose(t), fns, kongRead); len(errs) > 0 {
		t.Errorf("timeouts:\n%s", strings.Join(errStrings(errs), "\n"))
	}

	fixture, err := LoadCompose([]byte(`
services:
  gateway:
    environment: {upstream_timeout: 30s, write_timeout: 30s}
  connector:
    environment: {INVOKE_TIMEOUT: "20"}
`))
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, "CheckTimeouts", CheckTimeouts(fixture,
		map[string]FunctionTimeouts{"f": {Exec: 30 * time.Second, Write: 30 * time.Second}, "g": {Exec: 30 * time.Second, Write: 35 * time.Second}},
		map[string]time.Duration{"edge": 30 * time.Second}),
		"gateway: write_timeout 30s must exceed upstream_timeout 30s",
		"function f: write_timeout 30s must exceed exec_timeout 30s",
		"function g: write_timeout 35s exceeds the gateway's upstream_timeout 30s",
		"kong service edge: read_timeout 30s must exceed",
		"connector: INVOKE_TIMEOUT 20s is shorter")
}

// scrapesTheStack checks that the functions job of the Prometheus file lists
// exactly the functions of the stack file, and returns the file's jobs.
func scrapesTheStack(t *testing.T, promFile, stackFile string) map[string][]string {
	t.Helper()
	jobs, err := JobTargets(read(t, promFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := stackfile.LoadEnv(filepath.Join(root(t), stackFile), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	fns := slices.Sorted(maps.Keys(s.Functions))
	if diff := cmp.Diff(fns, slices.Sorted(slices.Values(jobs["functions"]))); diff != "" {
		t.Errorf("%s's job functions vs %s's functions (-stack +prometheus):\n%s", promFile, stackFile, diff)
	}
	return jobs
}

func TestPrometheusTargets(t *testing.T) {
	jobs := scrapesTheStack(t, "monitoring/prometheus.yml", "stack.yml")
	// The faasd-CE stack's configuration scrapes its bundles.
	scrapesTheStack(t, "monitoring/prometheus.ce.yml", "stack.ce.yml")
	c := realCompose(t)
	var eps []Endpoint
	for job, targets := range jobs {
		if job == "functions" {
			continue
		}
		for _, tg := range targets {
			host, port, _ := strings.Cut(tg, ":")
			if host != "localhost" {
				eps = append(eps, Endpoint{Host: host, Port: port, From: "prometheus job " + job})
			}
		}
	}
	if errs := CheckEndpoints(c, eps); len(errs) > 0 {
		t.Error(strings.Join(errStrings(errs), "\n"))
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		Datasources []struct{ UID, Type string } `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(read(t, "monitoring/grafana/provisioning/datasources/shop.yml"), &ds); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range ds.Datasources {
		types = append(types, d.Type+"/"+d.UID)
	}
	if diff := cmp.Diff([]string{"prometheus/prometheus", "jaeger/jaeger"}, types); diff != "" {
		t.Errorf("datasources (-want +got):\n%s", diff)
	}
	all := strings.Join(dashboardExprs(t), "\n")
	for _, metric := range []string{"function_requests_total", "function_request_duration_seconds_bucket", "shop_outbox_oldest_pending_age_seconds", "shop_dead_letters", "shop_orders_total", "shop_saga_step_duration_seconds_bucket"} {
		if !strings.Contains(all, metric) {
			t.Errorf("the dashboard shows no %s", metric)
		}
	}
}

// Every dashboard of monitoring/grafana/dashboards (Grafana provisions
// them all, and refuses two with one uid) has a uid and a title of its own,
// panels with ids of their own, each query on the provisioned Prometheus
// datasource, and a live test that evaluates its every query against real
// metrics (dashboardChecks in tests/integration): a dashboard added without
// one would show "No data" unnoticed.
func TestDashboardsAreWellFormedAndChecked(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root(t), "monitoring", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard: %v", err)
	}
	var tests strings.Builder
	goFiles, _ := filepath.Glob(filepath.Join(root(t), "tests", "integration", "*_test.go"))
	for _, f := range goFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tests.Write(b)
	}
	uids, titles := map[string]string{}, map[string]string{}
	for _, f := range files {
		name := filepath.Base(f)
		var dash struct {
			UID   string `json:"uid"`
			Title string `json:"title"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if dash.UID == "" || dash.Title == "" {
			t.Errorf("%s: uid %q, title %q: both are required", name, dash.UID, dash.Title)
		}
		if other, ok := uids[dash.UID]; ok {
			t.Errorf("%s and %s share the uid %q", other, name, dash.UID)
		}
		if other, ok := titles[dash.Title]; ok {
			t.Errorf("%s and %s share the title %q", other, name, dash.Title)
		}
		uids[dash.UID], titles[dash.Title] = name, name
		problems, err := panelProblems(name, b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, p := range problems {
			t.Error(p)
		}
		if !strings.Contains(tests.String(), `dashboardChecks(t, "`+name+`")`) {
			t.Errorf("%s: no test in tests/integration evaluates its queries (dashboardChecks(t, %q))", name, name)
		}
	}
}

// panelProblems are the panels of dashboard b (named name), those inside
// its rows included, that share an id or read a datasource other than the
// provisioned Prometheus. A row holds panels and queries nothing: it needs
// an id of its own but no datasource.
func panelProblems(name string, b []byte) ([]string, error) {
	panels, err := dashboardPanels(b)
	if err != nil {
		return nil, err
	}
	var problems []string
	ids := map[int]bool{}
	for _, p := range panels {
		if ids[p.ID] {
			problems = append(problems, fmt.Sprintf("%s: panel id %d twice", name, p.ID))
		}
		ids[p.ID] = true
		if p.Type == "row" && len(p.Targets) == 0 {
			continue
		}
		if p.Datasource.UID != "prometheus" {
			problems = append(problems, fmt.Sprintf("%s: panel %q: datasource %q, not the provisioned prometheus", name, p.Title, p.Datasource.UID))
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.Datasource.UID != "prometheus" {
				problems = append(problems, fmt.Sprintf("%s: panel %q: a query %q on datasource %q", name, p.Title, tg.Expr, tg.Datasource.UID))
			}
		}
	}
	return problems, nil
}

// panelExprs are the queries of every panel of dashboard b, those inside
// its rows included.
func panelExprs(b []byte) ([]string, error) {
	panels, err := dashboardPanels(b)
	if err != nil {
		return nil, err
	}
	var exprs []string
	for _, p := range panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs, nil
}

// dashboardExprs are the queries of every panel, those inside rows
// included, of every dashboard of monitoring/grafana/dashboards.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), "monitoring", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard: %v", err)
	}
	var exprs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		e, err := panelExprs(b)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		exprs = append(exprs, e...)
	}
	if len(exprs) == 0 {
		t.Fatal("no panel query in the dashboards")
	}
	return exprs
}

// Every metric the shop's code defines (codeMetrics: its shop_* and
// fnserve's function_*) is on a panel of a dashboard (one inside a row
// counts; a histogram by its _bucket, _count or _sum), and
// every recording rule feeds a panel or an alert: a metric nobody can see,
// or a rule nothing reads, is dead weight or a gap in what operators watch.
// A metric is shown by its whole name: until 2026-12-08 any query holding it
// as a substring counted (shop_dead_letters by a shop_dead_letters_total),
// and only shop_* names, read from the source text, were checked.
func TestEveryMetricIsShownAndEveryRuleRead(t *testing.T) {
	metrics := codeMetrics(t)
	if len(metrics) < 10 {
		t.Fatalf("found %d shop metrics in the code, expected at least 10: is the parsing stale?", len(metrics))
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Record, Alert, Expr string } `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(read(t, "monitoring/rules/shop.yml"), &rules); err != nil {
		t.Fatal(err)
	}
	panels := dashboardExprs(t)
	readers := slices.Clone(panels)
	var records []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records = append(records, r.Record)
			} else {
				readers = append(readers, r.Expr)
			}
		}
	}
	shown := strings.Join(panels, "\n")
	for _, m := range slices.Sorted(maps.Keys(metrics)) {
		if !readsMetric(shown, m) {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}
	if len(records) == 0 {
		t.Fatal("no recording rule in monitoring/rules/shop.yml")
	}
	all := strings.Join(readers, "\n")
	for _, r := range records {
		if !readsMetric(all, r) {
			t.Errorf("recording rule %s feeds no panel and no alert", r)
		}
	}
}

// TestChecksFail proves each check reports what it exists for.
func TestChecksFail(t *testing.T) {
	fixture := `
services:
  api:
    image: example/api
    ports: ["8080:8080", "127.0.0.1:9000:9000", "0.0.0.0:7000:7000"]
    restart: always
    volumes:
      - data:/var/lib/data
      - /etc/api:/etc/api
      - type: bind
        source: /var/lib/faasd/secrets/unknown
        target: /run/secrets/unknown
      - type: bind
        source: /var/lib/faasd/shop/monitoring/missing.yml
        target: /x
    depends_on: [ghost]
  db:
    image: postgres:latest
    expose: ["5432"]
  relay:
    image: ${REGISTRY}/relay:${TAG:-dev}
    environment:
      - DB=postgres://shop@db:5433/x
      - CACHE_ADDR=cache:6379
      - METRICS_ADDR=0.0.0.0:9464
      - LOCAL=http://127.0.0.1:8080
  kong:
    image: kong:3.9.0
    ports: ["8000:8000"]
    command: ["sh", "-c", "export A_SET=$$(cat f); exec kong"]
  pg:
    image: docker.io/library/postgres:15.13
    entrypoint: []
    command: [postgres, -c, max_connections=200]
  prom:
    image: docker.io/prom/prometheus:v3.1.0
    command: ["--config.file=/etc/prometheus/prometheus.yml"]
  redis:
    image: docker.io/library/redis:7.4.2-alpine
    user: "999"
    entrypoint: []
    command: [docker-entrypoint.sh, redis-server]
  mq:
    image: docker.io/library/rabbitmq:3.13.7-management
    user: "999"
    entrypoint: []
    command: [/bin/sh, -c, 'set -e; p=$$(cat /run/secrets/p) || p=; [ -n "$$p" ] || { echo "mq not started, the secret p is missing, unreadable or empty; docs: step 3" >&2; exit 1; }; export PASS="$$p"; exec docker-entrypoint.sh rabbitmq-server']
  mq-silent:
    image: docker.io/library/rabbitmq:3.13.7-management
    user: "999"
    entrypoint: []
    command: [/bin/sh, -c, 'set -e; p=$$(cat /run/secrets/p); [ -n "$$p" ]; q=$$(cat /run/secrets/q); [ -n "$$q" ] || exit 1; export PASS="$$p$$q"; exec docker-entrypoint.sh rabbitmq-server']
  kv:
    image: docker.io/library/redis:7.4.2-alpine
    user: "999"
    entrypoint: []
    command:
      - /bin/sh
      - -c
      - |
        set -e; bad=
        v=$$(cat /run/secrets/r 2>/dev/null) || v=
        if [ -n "$$bad" ]; then echo "kv not started" >&2; exit 1; fi
        [ -n "$$v" ] || { printf 'kv not started, the secret r is missing, unreadable or empty\n' >&2; exit 1; }
        [ -n "$$v" ] && echo "set"
        w=$$(cat /run/secrets/w) || w=
        [ -n "$$w" ] || {
          >&2 echo "kv not started, the secret w is missing, unreadable or empty"
          exit 1
        }
        [ -z "$$w" ] && exit 1
        exec docker-entrypoint.sh redis-server --requirepass "$$v$$w"
  mq-read:
    image: docker.io/library/rabbitmq:3.13.7-management
    user: "999"
    entrypoint: []
    command: [/bin/sh, -c, 'set -e; read -r p < /run/secrets/p; [ "$$p" ]; export PASS="$$p"; exec docker-entrypoint.sh rabbitmq-server']
  meili:
    image: docker.io/getmeili/meilisearch:v1.11.3
    entrypoint: []
    command: [/bin/sh, -c, 'set -e; exec /bin/meilisearch --master-key "$$(cat /run/secrets/k)"']
`
	c, err := LoadCompose([]byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, "images", CheckImagesPinned(c), `"example/api" has no tag`, `moving tag "latest"`, "incomplete")
	wantFindings(t, "ports", CheckPublishedPorts(c, "kong"), `"8080:8080" is published on all interfaces`, `"0.0.0.0:7000:7000" is published on all interfaces`)
	wantFindings(t, "volumes", CheckVolumes(c), "restart: always", "not a bind mount", `"/etc/api" is not under /var/lib/faasd`)
	wantFindings(t, "secrets", CheckSecretFiles(c, []string{"jwt-verify-key"}), "secret file /var/lib/faasd/secrets/unknown")
	wantFindings(t, "project files", CheckProjectFiles(c, root(t)), "monitoring/missing.yml")
	wantFindings(t, "depends_on", CheckDependsOn(c), "ghost")
	images := map[string]Image{
		"kong":                           {Entrypoint: []string{"/docker-entrypoint.sh"}},
		"docker.io/library/postgres":     Images["docker.io/library/postgres"],
		"docker.io/library/redis":        Images["docker.io/library/redis"],
		"docker.io/prom/prometheus":      Images["docker.io/prom/prometheus"],
		"docker.io/library/rabbitmq":     Images["docker.io/library/rabbitmq"],
		"docker.io/getmeili/meilisearch": Images["docker.io/getmeili/meilisearch"],
	}
	wantFindings(t, "commands", CheckCommands(c, images),
		`service kong: command starts with "sh"`, "service kong: a service with a command sets `entrypoint: []`",
		`service pg: command starts with "postgres"`,
		`service prom: command starts with the flag "--config.file=`, "service prom: a service with a command sets `entrypoint: []`")
	wantFindings(t, "secret reads", CheckSecretReads(c),
		`service kong: "export A_SET=$(`, "service kong: a script that reads a file starts with `set -e;`",
		"service kv: [ -z \"$w\" ] stops the service without a word",
		`service meili: "exec /bin/meilisearch --master-key \"$(`,
		"service mq-read: [ \"$p\" ] stops the service without a word",
		"service mq-silent: [ -n \"$p\" ] stops the service without a word", "service mq-silent: [ -n \"$q\" ] stops the service without a word")
	wantFindings(t, "users", CheckUsers(c, images),
		"service api: image example/api is not in deploycheck.Images", "service db: image postgres is not in deploycheck.Images",
		"service pg: docker.io/library/postgres starts as root and switches user", "service relay: image /relay is not in deploycheck.Images")
	eps := Endpoints(c.Services["relay"].Environment, "relay")
	if diff := cmp.Diff([]Endpoint{{Host: "cache", Port: "6379", From: "relay CACHE_ADDR"}, {Host: "db", Port: "5433", From: "relay DB"}}, eps); diff != "" {
		t.Errorf("Endpoints (-want +got):\n%s", diff)
	}
	wantFindings(t, "endpoints", CheckEndpoints(c, eps), "host cache is not a service", "does not declare port 5433")
	wantFindings(t, "kong vault", CheckKongVault(c, "kong", KongVaultEnv([]byte("secret: {vault://env/a-set}\nother: {vault://env/b-missing}"))), "B_MISSING")
	if _, err := SecretsLayout([]byte("no markers")); err == nil {
		t.Error("SecretsLayout without markers: no error")
	}
}

// CheckSecretReads reads a script whichever shell runs it, and refuses a
// shell's command in a form it cannot read (one string, flags together, a
// script file) rather than pass it unread.
func TestCheckSecretReadsLeavesNoShellUnread(t *testing.T) {
	c, err := LoadCompose([]byte(`
services:
  bash:
    command: [/bin/bash, -c, 'set -e; export P=$$(cat /run/secrets/p); exec x']
  flags:
    command: [/bin/sh, -ec, 'p=$$(cat /run/secrets/p) || p=; export P="$$p"; exec x']
  other:
    command: [/bin/x, -c, 'export P=$$(cat /run/secrets/p)']
  script:
    command: [sh, /run/start.sh]
  string:
    command: /bin/sh -c 'set -e; export P=$$(cat /run/secrets/p); exec x'
`))
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, "secret reads", CheckSecretReads(c),
		`service bash: "export P=$(`,
		"service flags: write the command as a list [/bin/sh, -c, SCRIPT]",
		"service script: write the command as a list [sh, -c, SCRIPT]",
		"service string: write the command as a list [/bin/sh, -c, SCRIPT]")
}

// The postgres init script (env/faasd/postgres-init/10-shop.sh) stops, before
// any psql, when it cannot read a role's password: a service's
// (db-password-<service>), the relay's, a reader's
// (db-password-<service>-reader) or the monitoring role's. A failed
// $(cat ...) inside psql's arguments does not trip set -e, and the role was
// created with an empty password. A directory stands for a file the script
// cannot read (the test may run as root, who reads any file). A password
// with white space (a CRLF line end) is refused too: the role's users trim
// it, the script would not. Read, each password reaches psql on its
// standard input, as a \set of a psql variable, and never in psql's
// arguments, which any local user sees in ps; psql runs with -X (no
// operator's ~/.psqlrc: its \set ECHO all would print every password).
func TestPostgresInitNeedsThePassword(t *testing.T) {
	sh := "/bin/sh" // as the containers run it
	dir := t.TempDir()
	calls, input := filepath.Join(dir, "psql-calls"), filepath.Join(dir, "psql-input")
	fake := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + calls + "\ncat >> " + input + "\n"
	if err := os.WriteFile(filepath.Join(dir, "psql"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	files := []string{"db-password-users", "db-password-catalog", "db-password-orders", "db-password-inventory",
		"db-password-payments", "db-password-relay", "postgres-monitor-password", "db-password-catalog-reader",
		"db-password-inventory-reader"}
	// run runs the script on a secrets folder holding every file, the one
	// named bad (if any) written by spoil.
	run := func(bad string, spoil func(path string) error) (string, string, error) {
		t.Helper()
		_ = os.Remove(calls)
		_ = os.Remove(input)
		secrets := t.TempDir()
		for i, f := range files {
			if err := os.WriteFile(filepath.Join(secrets, f), []byte("s3cret"+strconv.Itoa(i)+"\n"), 0o400); err != nil {
				t.Fatal(err)
			}
		}
		if bad != "" {
			if err := os.Remove(filepath.Join(secrets, bad)); err != nil {
				t.Fatal(err)
			}
			if err := spoil(filepath.Join(secrets, bad)); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(sh, filepath.Join(root(t), "env/faasd/postgres-init/10-shop.sh"))
		cmd.Env = []string{"PATH=" + dir + ":" + os.Getenv("PATH"), "POSTGRES_USER=postgres", "SHOP_SECRETS_DIR=" + secrets}
		out, err := cmd.CombinedOutput()
		b, _ := os.ReadFile(calls)
		return string(out), string(b), err
	}
	out, psql, err := run("", nil)
	if err != nil || !strings.HasPrefix(psql, "-X -v ON_ERROR_STOP=1 --username postgres --dbname postgres --set=reset_passwords=false\n") {
		t.Fatalf("readable passwords: err %v, output %q, psql calls:\n%s", err, out, psql)
	}
	if strings.Contains(psql, "s3cret") {
		t.Errorf("a password in psql's arguments:\n%s", psql)
	}
	stdin, err := os.ReadFile(input)
	if err != nil {
		t.Fatal(err)
	}
	for i, role := range []string{"shop_users", "shop_catalog", "shop_orders", "shop_inventory", "shop_payments", "shop_relay", "shop_monitor",
		"shop_catalog_reader", "shop_inventory_reader"} {
		if want := "\\set role " + role + "\n\\set p 's3cret" + strconv.Itoa(i) + "'\n"; !strings.Contains(string(stdin), want) {
			t.Errorf("psql's input holds no %q", want)
		}
	}
	spoils := map[string]func(string) error{
		"unreadable": func(p string) error { return os.Mkdir(p, 0o755) },
		"missing":    func(string) error { return nil },
		"empty":      func(p string) error { return os.WriteFile(p, []byte("\n"), 0o400) },
		"crlf":       func(p string) error { return os.WriteFile(p, []byte("s3cret\r\n"), 0o400) },
	}
	for _, f := range files {
		for what, spoil := range spoils {
			if out, psql, err := run(f, spoil); err == nil || psql != "" {
				t.Errorf("%s %s: err %v (want a failure), output %q, psql calls:\n%s", what, f, err, out, psql)
			}
		}
	}
	// A quoting that fails (sed missing, or refusing a byte its locale does
	// not know) stops the script before psql: inside psql's input pipe its
	// status was lost and \set p '' created the role without a password.
	if err := os.WriteFile(filepath.Join(dir, "sed"), []byte("#!/bin/sh\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, psql, err := run("", nil); err == nil || psql != "" {
		t.Errorf("sed failing: err %v (want a failure), output %q, psql calls:\n%s", err, out, psql)
	}
}

// connectorUID is the uid (and gid) of the user app of the connectors'
// images: the secret files they read on the faasd host belong to it
// (docs/deploy-faasd.md, step 3), so it must not be whatever free uid
// adduser picks.
const connectorUID = "10000"

// Every connector image runs as app with the fixed uid and gid
// connectorUID, and the guide gives the connectors' secret files to it.
func TestConnectorsRunAsAFixedUID(t *testing.T) {
	dockerfiles, err := filepath.Glob(filepath.Join(root(t), "connectors", "*", "Dockerfile"))
	if err != nil || len(dockerfiles) < 3 {
		t.Fatalf("connector Dockerfiles: %v, %v", dockerfiles, err)
	}
	for _, f := range dockerfiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		df := string(b)
		rel, _ := filepath.Rel(root(t), f)
		for _, re := range []string{
			`addgroup (--system|-S) -g ` + connectorUID + ` app\b`,
			`adduser (--system|-S) --ingroup app -u ` + connectorUID + ` app\b`,
			`(?m)^USER app$`,
		} {
			if !regexp.MustCompile(re).MatchString(df) {
				t.Errorf("%s does not match %s", rel, re)
			}
		}
	}
	guide := string(read(t, "docs/deploy-faasd.md"))
	for _, want := range []string{
		"chown " + connectorUID + " event-signing-key internal-token-rabbitmq-connector internal-token-scheduler",
		"chown 999:" + connectorUID + " db-password-relay rabbitmq-password",
	} {
		if !strings.Contains(guide, want) {
			t.Errorf("docs/deploy-faasd.md lacks %q", want)
		}
	}
}

// The step of docs/deploy-faasd.md that adds KONG_PORT_MAPS to faasd's
// compose file, run as written twice on a copy of docker-compose.yml (step
// 6, then again, as after an upgrade that did not replace the file or by an
// operator who is not sure it ran): the kong service gains the one key and
// nothing else changes, and the guide's count prints 1. A second key makes a
// file no YAML loader reads (mapping key already defined): faasd would start
// nothing.
func TestKongPortMapsStepRunsTwice(t *testing.T) {
	const target = "/var/lib/faasd/docker-compose.yaml"
	guide := string(read(t, "docs/deploy-faasd.md"))
	_, rest, ok := strings.Cut(guide, "**With 443 redirected to 8443, set `KONG_PORT_MAPS")
	if !ok {
		t.Fatal("docs/deploy-faasd.md: no paragraph setting KONG_PORT_MAPS")
	}
	_, block, _ := strings.Cut(rest, "```sh\n")
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatal("docs/deploy-faasd.md: no sh block after the KONG_PORT_MAPS paragraph")
	}
	var change, count []string
	for _, line := range strings.Split(block, "\n") {
		switch {
		case strings.HasPrefix(line, "grep -c KONG_PORT_MAPS "+target):
			count = append(count, line)
		case strings.Contains(line, "KONG_PORT_MAPS") && strings.Contains(line, "sed -i") && strings.Contains(line, target):
			change = append(change, line)
		}
	}
	if len(change) != 1 {
		t.Fatalf("the block's lines that add KONG_PORT_MAPS to %s: %q, want one", target, change)
	}
	orig := read(t, "docker-compose.yml")
	file := filepath.Join(t.TempDir(), "docker-compose.yaml")
	if err := os.WriteFile(file, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(line string) (string, error) {
		b, err := exec.Command("/bin/sh", "-c", strings.ReplaceAll(line, target, file)).CombinedOutput()
		return string(b), err
	}
	for i := range 2 {
		if out, err := run(change[0]); err != nil {
			t.Fatalf("run %d of %q: %v\n%s", i+1, change[0], err, out)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCompose(got)
	if err != nil {
		t.Fatalf("the compose file after two runs: %v", err)
	}
	if v := c.Services["kong"].Environment["KONG_PORT_MAPS"]; v != "443:8443" {
		t.Errorf("kong's KONG_PORT_MAPS %q, want 443:8443", v)
	}
	if back := strings.Replace(string(got), "      KONG_PORT_MAPS: \"443:8443\"\n", "", 1); back != string(orig) {
		t.Errorf("the step changed more than the one key:\n%s", cmp.Diff(string(orig), back))
	}
	if len(count) != 1 {
		t.Fatalf("the block's count of the key (grep -c KONG_PORT_MAPS %s): %q, want one line", target, count)
	}
	if out, err := run(count[0]); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("%q: %q, %v; want 1", count[0], out, err)
	}
}

// shows reports whether out holds password or any of its words (redis-server
// prints a configuration line it cannot parse, or the part of it past a
// line break).
func shows(out, password string) bool {
	if strings.Contains(out, password) {
		return true
	}
	for _, w := range strings.Fields(password) {
		if strings.Contains(out, w) {
			return true
		}
	}
	return false
}

// Every block of docs/deploy-faasd.md that deploys the whole stack (step 5,
// step 7's items 2 and 8) builds a writer of each readers' database, through
// its /_/ready, before the block's first call of a reader: the public
// readers never migrate and answer 503 until a writer of their release has,
// and faasd builds a writer only when it is called (the catalog has no
// scheduled writer), so a deploy without it leaves the storefront down. The
// writers and readers of each database are read from stack.yml's secrets: a
// writer declares db-password-<service>, a reader db-password-<service>-reader.
func TestEveryDeployReadiesAWriterOfEachReadersDatabase(t *testing.T) {
	s, err := stackfile.LoadEnv(filepath.Join(root(t), "stack.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	writers, readers := map[string][]string{}, map[string]string{} // database → its writers; reader → its database
	for name, fn := range s.Functions {
		for _, sec := range fn.Secrets {
			if db, ok := strings.CutPrefix(sec, "db-password-"); ok {
				if db, ok := strings.CutSuffix(db, "-reader"); ok {
					readers[name] = db
				} else {
					writers[db] = append(writers[db], name)
				}
			}
		}
	}
	for _, ws := range writers {
		slices.Sort(ws)
	}
	dbs := slices.Sorted(maps.Values(readers))
	dbs = slices.Compact(dbs)
	if len(dbs) != 2 {
		t.Fatalf("stack.yml's readers' databases: %v, want catalog and inventory", dbs)
	}
	readyLoop := regexp.MustCompile(`^for f in ([a-z -]+); do curl -fsS .*http://127\.0\.0\.1:8080/function/\$f/_/ready`)
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(read(t, "docs/deploy-faasd.md")), -1)
	deploys := 0
	for _, b := range blocks {
		lines := strings.Split(b[1], "\n")
		at := slices.IndexFunc(lines, func(l string) bool {
			l = strings.TrimSpace(l)
			return strings.HasPrefix(l, "faas-cli deploy -f stack.yml") && !strings.Contains(l, "--regex")
		})
		if at < 0 {
			continue
		}
		deploys++
		readied := map[string]bool{}
		for _, l := range lines[at+1:] {
			l = strings.TrimSpace(l)
			if m := readyLoop.FindStringSubmatch(l); m != nil {
				for _, f := range strings.Fields(m[1]) {
					for db, ws := range writers {
						if slices.Contains(ws, f) {
							readied[db] = true
						}
					}
				}
				continue
			}
			calls := strings.Contains(l, "/api/v1/")
			for r := range readers {
				calls = calls || strings.Contains(l, "/function/"+r)
			}
			if calls {
				break
			}
		}
		for _, db := range dbs {
			if !readied[db] {
				t.Errorf("docs/deploy-faasd.md: the block deploying with %q builds no writer of %s (one of %v) through its /_/ready before its first reader call",
					strings.TrimSpace(lines[at]), db, writers[db])
			}
		}
	}
	if deploys < 3 {
		t.Errorf("docs/deploy-faasd.md: %d blocks deploy the whole stack, want step 5's and step 7's items 2 and 8", deploys)
	}
}

// The guides' sentences about who holds which database password and who
// logs in as which role name the readers' roles and secrets that stack.yml
// gives the public readers: the sentences written before those roles
// existed said every function held its service's owner password, that a
// pooler's auth_file lists one role per service, that a restore's
// split-roles.sh grants only the relay, and that search-products holds the
// catalog owner's password.
func TestTheGuidesNameTheReadersRoles(t *testing.T) {
	s, err := stackfile.LoadEnv(filepath.Join(root(t), "stack.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var secrets, roles []string // the readers'
	searchSecret := ""
	for name, fn := range s.Functions {
		for _, sec := range fn.Secrets {
			db, ok := strings.CutPrefix(sec, "db-password-")
			if !ok {
				continue
			}
			if name == "search-products" {
				searchSecret = sec
			}
			if db, ok := strings.CutSuffix(db, "-reader"); ok {
				secrets, roles = append(secrets, sec), append(roles, "shop_"+db+"_reader")
			}
		}
	}
	slices.Sort(secrets)
	slices.Sort(roles)
	secrets, roles = slices.Compact(secrets), slices.Compact(roles)
	if len(roles) != 2 || searchSecret != "db-password-catalog-reader" {
		t.Fatalf("stack.yml: readers' roles %v, search-products' database secret %q; want two roles and the catalog readers'", roles, searchSecret)
	}
	for _, c := range []struct {
		doc, marker string
		want        []string
	}{
		{"docs/deploy-faasd.md", "Each function lists", append(slices.Clone(secrets), roles...)},
		{"docs/deploy-faasd.md", "`split-roles.sh` then", append([]string{"0008_reader_grants.sql"}, roles...)},
		{"docs/deploy-kubernetes.md", "the pooler's `auth_file` (or `auth_query`) lists", roles},
		{"docs/security.md", "| `meili-search-key` |", []string{"`search-products` (which also holds `" + searchSecret + "`"}},
	} {
		p := paragraph(t, string(read(t, c.doc)), c.marker)
		for _, w := range c.want {
			if !strings.Contains(strings.Join(strings.Fields(p), " "), w) {
				t.Errorf("%s, the paragraph of %q, does not name %q:\n%s", c.doc, c.marker, w, p)
			}
		}
	}
}

// paragraph is the paragraph of doc (between blank lines) that contains
// marker, which must occur once.
func paragraph(t *testing.T, doc, marker string) string {
	t.Helper()
	if n := strings.Count(doc, marker); n != 1 {
		t.Fatalf("%q occurs %d times, want once", marker, n)
	}
	i := strings.Index(doc, marker)
	start := strings.LastIndex(doc[:i], "\n\n") + 1
	end := strings.Index(doc[i:], "\n\n")
	if end < 0 {
		return doc[start:]
	}
	return doc[start : i+end]
}

// Every variable faas-cli substitutes into a stack file (the image's
// REGISTRY and TAG, SHOP_ENV, the mail settings of notify-user) comes from
// the shell that runs faas-cli deploy, so the guide that deploys that stack
// file names each one: a variable it leaves out is deployed with its
// default, silently (an SMTP_ADDR left out deploys notify-user with email
// off).
func TestTheGuidesNameWhatTheStackFilesSubstitute(t *testing.T) {
	substituted := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`)
	for _, c := range []struct{ doc, stack string }{
		{"docs/deploy-faasd.md", "stack.yml"},
		{"docs/deploy-faasd.md", "stack.ce.yml"},
		{"docs/deploy-kubernetes.md", "stack.yml"},
	} {
		doc := string(read(t, c.doc))
		names := map[string]bool{}
		for _, m := range substituted.FindAllStringSubmatch(string(read(t, c.stack)), -1) {
			names[m[1]] = true
		}
		if len(names) == 0 {
			t.Fatalf("%s substitutes no variable", c.stack)
		}
		for _, name := range slices.Sorted(maps.Keys(names)) {
			if !regexp.MustCompile(`\b` + name + `\b`).MatchString(doc) {
				t.Errorf("%s substitutes ${%s}, which %s, the guide that deploys it, never names", c.stack, name, c.doc)
			}
		}
	}
}

// The lines of docs/deploy-kubernetes.md's "Secrets and functions" that come
// before its faas-cli secret create loop make, in secrets/, every file that
// loop and the shop-connector-credentials command read (but meili-key and
// meili-search-key, which the key loop after the block gets from
// Meilisearch) and every file 10-shop.sh reads ("Managed services" points it
// at secrets/), in the formats their readers take: run in an empty folder
// they make each one, non-empty; run again (the upgrade sections send the
// operator back to them, and "Managed services" may run them first) they
// change none (a token key pair made again would reach Kong's kong.yml at
// the next render-config.sh while login-user still signs with the pair its
// Secret holds: Kong would refuse every token); run with a signing key
// lost, they make its verify key again, the new key's half. The guide sent
// its reader to docs/deploy-faasd.md for most of them, whose commands cd
// into /var/lib/faasd/secrets. secrets/ is in the checkout, so git must
// ignore it.
func TestTheKubernetesGuideMakesEverySecretOnce(t *testing.T) {
	doc := string(read(t, "docs/deploy-kubernetes.md"))
	_, section, ok := strings.Cut(doc, "\n## Secrets and functions\n")
	if !ok {
		t.Fatal("docs/deploy-kubernetes.md has no section \"Secrets and functions\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, _ := strings.Cut(section, "```sh\n")
	block, afterBlock, _ := strings.Cut(block, "```")
	stmts := shStatements(block)
	create := slices.IndexFunc(stmts, func(l string) bool { return strings.Contains(l, "faas-cli secret create $s") })
	loop := create - 1
	for loop >= 0 && !strings.HasPrefix(stmts[loop], "for s in ") {
		loop--
	}
	if loop < 0 {
		t.Fatalf("the section's block has no loop of faas-cli secret create:\n%s", block)
	}
	listed, _, _ := strings.Cut(strings.TrimPrefix(stmts[loop], "for s in "), ";")
	needed := strings.Fields(strings.ReplaceAll(listed, "\\\n", " "))
	conn := slices.IndexFunc(stmts, func(l string) bool {
		return strings.HasPrefix(l, "kubectl create secret generic shop-connector-credentials ")
	})
	if conn < 0 {
		t.Fatalf("the section's block does not create shop-connector-credentials:\n%s", block)
	}
	fromFile := regexp.MustCompile(`--from-file=secrets/([A-Za-z0-9_.-]+)`)
	for _, m := range fromFile.FindAllStringSubmatch(stmts[conn], -1) {
		needed = append(needed, m[1])
	}
	// meili-key and meili-search-key come from Meilisearch, by the key loop
	// of the section's next block, which writes both into secrets/.
	for _, k := range []string{"meili-key", "meili-search-key"} {
		if !strings.Contains(afterBlock, "'"+k+" ") || !strings.Contains(afterBlock, "> secrets/$1") {
			t.Errorf("the section's key loop does not write secrets/%s", k)
		}
	}
	needed = slices.DeleteFunc(needed, func(s string) bool { return s == "meili-key" || s == "meili-search-key" })
	// "Managed services" points 10-shop.sh (SHOP_SECRETS_DIR) at secrets/:
	// every file it reads before its first psql must be made here too.
	initReads := postgresInitReads(t)
	for _, f := range initReads {
		if !slices.Contains(needed, f) {
			needed = append(needed, f)
		}
	}
	if len(needed) < 20 {
		t.Fatalf("the loop and the connectors' command read %d files %q; want the twenty and more stack.yml's functions and the connectors hold", len(needed), needed)
	}

	// The guide makes them in the checkout, from which nothing secret may
	// be committed.
	for _, f := range needed {
		check := exec.Command("git", "check-ignore", "-q", "--no-index", "secrets/"+f)
		check.Dir = root(t)
		if err := check.Run(); err != nil {
			t.Errorf("secrets/%s, made by the guide in the repository's root, is not ignored by git: %v", f, err)
		}
	}

	script := strings.Join(stmts[:loop], "\n")
	dir := t.TempDir()
	run := func() map[string]string {
		t.Helper()
		cmd := exec.Command("sh", "-ec", script)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the lines before the faas-cli secret create loop failed in an empty folder: %v\n%s\n%s", err, out, script)
		}
		files := map[string]string{}
		for _, f := range needed {
			b, err := os.ReadFile(filepath.Join(dir, "secrets", f))
			if err != nil || len(strings.TrimSpace(string(b))) == 0 {
				t.Errorf("secrets/%s, read by the section's Secrets, is not made by the lines before them (%v, %d bytes)", f, err, len(b))
				continue
			}
			files[f] = string(b)
		}
		return files
	}
	first := run()
	if t.Failed() {
		t.FailNow()
	}
	second := run()
	for _, f := range needed {
		if first[f] != second[f] {
			t.Errorf("run again, the guide's lines replace secrets/%s, which the Secrets, Kong and the services already hold", f)
		}
	}
	// 10-shop.sh, pointed at that folder as "Managed services" says, reads
	// every password it needs (up to its first psql).
	initCmd := exec.Command("sh", "-c", postgresInitBeforePsql(t))
	initCmd.Dir = dir
	initCmd.Env = append(os.Environ(), "SHOP_SECRETS_DIR=secrets")
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Errorf("10-shop.sh with SHOP_SECRETS_DIR=secrets cannot read the guide's files: %v\n%s", err, out)
	}

	// The formats the readers take.
	hexPassword := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, f := range needed {
		if strings.HasPrefix(f, "db-password-") || f == "rabbitmq-password" || f == "redis-password" || slices.Contains(initReads, f) {
			if !hexPassword.MatchString(strings.TrimSuffix(first[f], "\n")) {
				t.Errorf("secrets/%s = %d bytes, want 64 hex digits (letters and digits only)", f, len(first[f]))
			}
		}
	}
	pairs := func(when string, files map[string]string) {
		t.Helper()
		for _, p := range []string{"event", "jwt"} {
			priv, err := edkey.ParsePrivate(p+"-signing-key", files[p+"-signing-key"])
			if err != nil {
				t.Errorf("%s: %v", when, err)
				continue
			}
			pub, err := edkey.ParsePublic(p+"-verify-key", files[p+"-verify-key"])
			if err != nil || len(pub) != 1 || !pub[0].Equal(priv.Public()) {
				t.Errorf("%s: secrets/%s-verify-key is not the public half of %[2]s-signing-key (%v)", when, p, err)
			}
		}
	}
	pairs("made", first)
	// A signing key lost (missing or emptied) while its verify key stays:
	// the run that makes a new one derives its public half again, or Kong
	// (or the event functions) would keep the old one and refuse all.
	for _, p := range []string{"event", "jwt"} {
		if err := os.WriteFile(filepath.Join(dir, "secrets", p+"-signing-key"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pairs("a signing key made again", run())
	callers := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(first["internal-callers"], "\n"), "\n") {
		c, h, _ := strings.Cut(l, " ")
		if _, dup := callers[c]; dup {
			t.Errorf("secrets/internal-callers lists %s twice", c)
		}
		callers[c] = h
	}
	token := regexp.MustCompile(`^([a-z-]+)\.[A-Za-z0-9_-]{43}$`)
	for _, f := range needed {
		c, ok := strings.CutPrefix(f, "internal-token-")
		if !ok {
			continue
		}
		if !token.MatchString(first[f]) || token.FindStringSubmatch(first[f])[1] != c {
			t.Errorf("secrets/%s is not %q followed by a dot and 43 base64url characters", f, c)
		}
		sum := sha256.Sum256([]byte(first[f]))
		if callers[c] != hex.EncodeToString(sum[:]) {
			t.Errorf("secrets/internal-callers does not hold the SHA-256 of secrets/%s", f)
		}
	}
}

// shStatements splits a shell block into its statements: a line ending in
// || or \ goes on into the next.
func shStatements(block string) []string {
	var statements []string
	cont := false
	for _, l := range strings.Split(block, "\n") {
		if cont {
			statements[len(statements)-1] += "\n" + l
		} else {
			statements = append(statements, l)
		}
		end := strings.TrimRight(l, " ")
		cont = strings.HasSuffix(end, "||") || strings.HasSuffix(end, "\\")
	}
	return statements
}

// The lines of docs/deploy-faasd.md step 3 that make the access tokens' and
// the events' Ed25519 pairs make each pair once: run again (on a host that
// has them) they change neither file, and run with a signing key lost (an
// empty file, or none) beside its old verify key, they make the verify key
// again, the new signing key's public half: kept, the old one would have
// Kong refuse every token login-user signs (or the event functions every
// event the relay signs).
func TestTheFaasdGuideMakesTheKeyPairsOnce(t *testing.T) {
	doc := string(read(t, "docs/deploy-faasd.md"))
	_, step, ok := strings.Cut(doc, "\n## 3. Secrets and TLS files\n")
	if !ok {
		t.Fatal("docs/deploy-faasd.md has no step \"3. Secrets and TLS files\"")
	}
	step, _, _ = strings.Cut(step, "\n## ")
	_, block, _ := strings.Cut(step, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	keyFile := regexp.MustCompile(`\b(jwt|event)-(signing|verify)-key\b`)
	var lines []string
	for _, l := range shStatements(block) {
		if strings.Contains(l, "openssl") && keyFile.MatchString(l) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 4 {
		t.Fatalf("step 3's first block makes the two key pairs in %d statements, want 4 (each private key, then its public half):\n%s", len(lines), block)
	}
	script := strings.Join(lines, "\n")
	dir := t.TempDir()
	names := []string{"jwt-signing-key", "jwt-verify-key", "event-signing-key", "event-verify-key"}
	run := func(when string) map[string]string {
		t.Helper()
		cmd := exec.Command("sh", "-ec", script)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s\n%s", when, err, out, script)
		}
		files := map[string]string{}
		for _, f := range names {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			files[f] = string(b)
		}
		for _, p := range []string{"jwt", "event"} {
			priv, err := edkey.ParsePrivate(p+"-signing-key", files[p+"-signing-key"])
			if err != nil {
				t.Errorf("%s: %v", when, err)
				continue
			}
			pub, err := edkey.ParsePublic(p+"-verify-key", files[p+"-verify-key"])
			if err != nil || len(pub) != 1 || !pub[0].Equal(priv.Public()) {
				t.Errorf("%s: %s-verify-key is not the public half of %[2]s-signing-key (%v)", when, p, err)
			}
		}
		return files
	}
	first := run("made in an empty folder")
	if again := run("run again"); !maps.Equal(first, again) {
		t.Error("run again, step 3's lines replace a key of the pairs faasd's secrets, Kong and the functions already hold")
	}
	for _, lose := range []struct {
		how  string
		lose func(string) error
	}{
		{"emptied", func(f string) error { return os.WriteFile(f, nil, 0o600) }},
		{"removed", os.Remove},
	} {
		for _, p := range []string{"jwt", "event"} {
			if err := lose.lose(filepath.Join(dir, p+"-signing-key")); err != nil {
				t.Fatal(err)
			}
		}
		remade := run("the signing keys " + lose.how + ", their verify keys kept")
		for _, p := range []string{"jwt", "event"} {
			if remade[p+"-signing-key"] == first[p+"-signing-key"] {
				t.Errorf("the signing keys %s: %s-signing-key is the first one again, want a new key", lose.how, p)
			}
		}
		first = remade
	}
}

// postgresInitBeforePsql is env/faasd/postgres-init/10-shop.sh up to its
// first psql: the part that reads and checks the secret files.
func postgresInitBeforePsql(t *testing.T) string {
	t.Helper()
	script := string(read(t, "env/faasd/postgres-init/10-shop.sh"))
	before, _, ok := strings.Cut(script, "\n{\n")
	if !ok || strings.Contains(before, "psql -") {
		t.Fatal("env/faasd/postgres-init/10-shop.sh: no block piped into its first psql (a line \"{\")")
	}
	return before + "\n"
}

// postgresInitReads lists the secret files 10-shop.sh reads, as the script
// itself names them: its part before the first psql, run with a cat that
// notes each file asked for and answers a password.
func postgresInitReads(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "reads")
	stub := "cat() { printf '%s\\n' \"$1\" >> \"$READS\"; printf 'pw'; }\n"
	cmd := exec.Command("sh", "-c", stub+postgresInitBeforePsql(t))
	cmd.Env = append(os.Environ(), "SHOP_SECRETS_DIR=secrets", "READS="+log)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("10-shop.sh up to its first psql, every file answering a password: %v\n%s", err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, l := range strings.Fields(string(b)) {
		f, ok := strings.CutPrefix(l, "secrets/")
		if !ok {
			t.Fatalf("10-shop.sh read %s, outside SHOP_SECRETS_DIR", l)
		}
		files = append(files, f)
	}
	if len(files) < 9 {
		t.Fatalf("10-shop.sh reads %d files %q; want the nine roles' passwords", len(files), files)
	}
	return files
}

// TestDashboardChecksReadThePanelsOfRows: the datasource and id checks and
// the list of queries shown read a panel inside a collapsed row (kept in
// the row's own "panels") as they read a top-level one.
func TestDashboardChecksReadThePanelsOfRows(t *testing.T) {
	const dash = `{"uid": "x", "title": "x", "panels": [
	  {"id": 1, "type": "timeseries", "title": "top", "datasource": {"uid": "prometheus"},
	   "targets": [{"expr": "rate(shop_orders_total[5m])", "datasource": {"uid": "prometheus"}}]},
	  {"id": 2, "type": "row", "title": "row", "collapsed": true, "panels": [
	    {"id": 1, "type": "timeseries", "title": "in a row", "datasource": {"uid": "jaeger"},
	     "targets": [{"expr": "shop_row_only_total", "datasource": {"uid": "jaeger"}}]}
	  ]}
	]}`
	problems, err := panelProblems("made-wrong.json", []byte(dash))
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, "a row's panel", stringErrs(problems),
		"panel id 1 twice", `panel "in a row": datasource "jaeger"`, `panel "in a row": a query "shop_row_only_total" on datasource "jaeger"`)
	exprs, err := panelExprs([]byte(dash))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"rate(shop_orders_total[5m])", "shop_row_only_total"}, exprs); diff != "" {
		t.Errorf("queries shown (-want +got):\n%s", diff)
	}
}

func stringErrs(ss []string) []error {
	var errs []error
	for _, s := range ss {
		errs = append(errs, errors.New(s))
	}
	return errs
}

// The rabbitmq-connector's stop (STOP_TIMEOUT, by default INVOKE_TIMEOUT and
// connector.StopMargin) ends before faasd kills it, 30 s after its SIGTERM
// whatever the compose file says: until 2026-12-08 it waited 40 s, and a
// call still under way was cut by the kill and its event delivered again.
func TestTheConnectorsStopEndsBeforeFaasdKillsIt(t *testing.T) {
	if errs := CheckStopTimeout(realCompose(t), "rabbitmq-connector", connector.StopMargin); len(errs) > 0 {
		t.Errorf("stop timeout:\n%s", strings.Join(errStrings(errs), "\n"))
	}
	for _, tc := range []struct{ env, want string }{
		{`{INVOKE_TIMEOUT: 35s}`, "stops after 40s (INVOKE_TIMEOUT 35s and the 5s margin), want less than faasd's 30s"},
		{`{INVOKE_TIMEOUT: 35s, STOP_TIMEOUT: 30s}`, "stops after 30s (STOP_TIMEOUT), want less than faasd's 30s"},
		{`{INVOKE_TIMEOUT: 35s, STOP_TIMEOUT: soon}`, "STOP_TIMEOUT"},
		{`{INVOKE_TIMEOUT: 35s, STOP_TIMEOUT: 25s}`, ""},
		{`{INVOKE_TIMEOUT: "20"}`, ""},
	} {
		fixture, err := LoadCompose([]byte("services:\n  rabbitmq-connector:\n    environment: " + tc.env + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		errs := CheckStopTimeout(fixture, "rabbitmq-connector", connector.StopMargin)
		if tc.want == "" {
			wantFindings(t, tc.env, errs)
		} else {
			wantFindings(t, tc.env, errs, tc.want)
		}
	}
}
