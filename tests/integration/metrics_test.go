package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/proctest"
)

// metricsFunctions are the functions a checkout, a decline, a conflict, a
// cancellation, a recovery run and a reservation sweep reach, with the event
// handlers.
var metricsFunctions = []string{"get-product", "set-stock", "reserve-stock", "commit-stock", "release-stock",
	"charge-payment", "refund-payment", "create-order", "cancel-order", "recover-orders",
	"expire-reservations", "order-statuses", "update-product-stats", "notify-user", "index-product"}

// TestDashboardAndAlertsHaveData starts Debian's Prometheus on loopback,
// scraping the local stack through the runtime's HTTP service discovery
// (/system/metrics-targets: every function, the outbox relay, the RabbitMQ
// connector and the edge, in the jobs of monitoring/prometheus.yml) and
// loading monitoring/rules. During a burst of orders — confirmed, declined,
// out of stock, one cancelled, recover-orders and expire-reservations run —
// it evaluates through Prometheus' HTTP API every query of the Grafana dashboard, every
// recording rule and every alert's signal (see alertSignals; RabbitMQ's own
// alerts are TestRabbitMQAlertsReadWhatRabbitMQServes'), and fails
// naming each panel or rule that returns no series: a panel that would show
// "No data". A metric renamed in the code, the dashboard or the rules fails it.
func TestDashboardAndAlertsHaveData(t *testing.T) {
	bin := prometheusBinary(t)
	_, env := eventEnv(t)
	s := startShop(t, metricsFunctions, []string{"outbox-relay", "rabbitmq"}, env)
	prom := startPrometheus(t, bin, s.GatewayURL, s.GatewayCredentials().User, filepath.Join(s.SecretsDir, "basic-auth-password"))

	// Prometheus sees every function, both connectors and the edge.
	waitTargets(t, prom, map[string]int{"functions": len(metricsFunctions), "connectors": 2, "kong": 1})

	// The burst: every domain metric moves.
	p := s.product(t, "MX-MUG-1", 990, 100)
	scarce := s.product(t, "MX-RARE-1", 4990, 1)
	credential := s.ReadSecret(t, "internal-token-operator")
	var confirmed []string
	var confirmedTokens []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 8 {
		// The token is issued here and the order sent with tryCall: both
		// would fail the test with t.Fatal, which only this goroutine may call.
		tok := s.token(t, auth.RoleCustomer)
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := orderBody(p.ID, 1)
			if i%4 == 3 {
				body["payment"] = map[string]string{"token": "tok_chargeDeclined"}
			}
			var out struct{ ID string }
			code, err := tryCall(http.MethodPost, s.EdgeURL+"/api/v1/orders", tok, body, &out)
			if err != nil {
				t.Errorf("order %d: %v", i, err)
				return
			}
			switch {
			case i%4 == 3 && code != http.StatusPaymentRequired:
				t.Errorf("declined card: %d, want 402", code)
			case i%4 != 3 && code != http.StatusCreated:
				t.Errorf("order: %d, want 201", code)
			case code == http.StatusCreated:
				mu.Lock()
				confirmed, confirmedTokens = append(confirmed, out.ID), append(confirmedTokens, tok)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if code := call(t, http.MethodPost, s.EdgeURL+"/api/v1/orders", s.token(t, auth.RoleCustomer), orderBody(scarce.ID, 3), nil); code != http.StatusConflict {
		t.Errorf("order over the stock: %d, want 409", code)
	}
	if len(confirmed) == 0 {
		t.Fatal("no order confirmed")
	}
	if code := call(t, http.MethodPost, s.EdgeURL+"/api/v1/orders/"+confirmed[0]+"/cancel", confirmedTokens[0], nil, nil); code != http.StatusOK {
		t.Errorf("cancel: %d", code)
	}
	if code := call(t, http.MethodGet, s.EdgeURL+"/api/v1/orders", "", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("orders without a token: %d, want 401", code)
	}
	for range 2 {
		if code, out := internalCall(t, s.GatewayURL, "recover-orders", credential, map[string]any{}); code != http.StatusOK {
			t.Errorf("recover-orders: %d %v", code, out)
		}
		if code, out := internalCall(t, s.GatewayURL, "expire-reservations", credential, map[string]any{}); code != http.StatusOK {
			t.Errorf("expire-reservations: %d %v", code, out)
		}
	}

	checks := dashboardChecks(t, "shop-overview.json")
	checks = append(checks, ruleChecks(t, "")...)
	// The burst moved the shop owner's metrics (not only created them).
	for _, q := range []string{
		`shop_orders_total{outcome="confirmed"}`, `shop_orders_total{outcome="payment_declined"}`,
		`shop_orders_total{outcome="out_of_stock"}`, `shop_payment_declines_total`, `shop_reservation_conflicts_total`,
		`shop_saga_compensations_total{result="settled"}`, `shop_recovery_runs_total{result="ok"}`,
		`shop_reservation_sweeps_total{result="ok"}`,
		`shop_outbox_published_total`, `shop_connector_invocations_total{outcome="ok"}`,
		`kong_http_requests_total{code="401"}`, `function_requests_total{function="cancel-order",code="200"}`,
	} {
		checks = append(checks, check{what: "the burst moved " + q, query: "sum(" + q + ") > 0"})
	}

	// Wait for scrapes and rule evaluations: every check must have data
	// before the deadline.
	if waitChecks(t, prom, checks) {
		t.Logf("%d dashboard queries, rules, alert signals and burst checks returned series", len(checks))
	}
}

// waitChecks waits up to 2 minutes for every check to return series, and
// fails the test naming each that has none then. It reports whether all
// had.
func waitChecks(t *testing.T, p *prometheus, checks []check) bool {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var missing []string
	for {
		missing = missing[:0]
		for _, c := range checks {
			n, err := p.series(c.query)
			if err != nil {
				t.Fatalf("%s: %s: %v", c.what, c.query, err)
			}
			if n == 0 {
				missing = append(missing, fmt.Sprintf("%s: no data for %s", c.what, c.query))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	for _, m := range missing {
		t.Error(m)
	}
	return len(missing) == 0
}

// check is one PromQL query that must return at least one series.
type check struct{ what, query string }

// grafanaVars replaces the dashboard's variables with what Grafana sends:
// the function variable's "All" (.*) and concrete intervals.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "${__rate_interval}", "1m", "$__interval", "15s",
	"${__interval}", "15s", "$__range", "1h", "${__range}", "1h", "${function:regex}", ".*", "${function}", ".*", "$function", ".*")

var leftoverVar = regexp.MustCompile(`\$\{?[A-Za-z_]`)

// dashboardChecks are every panel query of the Grafana dashboard file name
// (in monitoring/grafana/dashboards).
func dashboardChecks(t *testing.T, name string) []check {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(runtimetest.Root(t), "monitoring", "grafana", "dashboards", name))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	var out []check
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, r := range ps {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for i, tg := range p.Targets {
				q := grafanaVars.Replace(tg.Expr)
				if leftoverVar.MatchString(q) {
					t.Fatalf("panel %q: query %q has a Grafana variable the test does not know", p.Title, tg.Expr)
				}
				out = append(out, check{what: fmt.Sprintf("panel %q (query %d)", p.Title, i+1), query: q})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if len(out) == 0 {
		t.Fatalf("no panel query in %s", name)
	}
	return out
}

// The rule groups that read a service's own metrics, which the local stack
// does not scrape (the runtime's /system/metrics-targets lists no broker,
// database, cache or Jaeger, and the machine's RabbitMQ runs without its
// plugin): each is checked by a test of its own against the service's real
// metrics, but Jaeger's (tracingGroup).
const (
	// rabbitMQGroup reads RabbitMQ's rabbitmq_prometheus plugin
	// (TestRabbitMQAlertsReadWhatRabbitMQServes).
	rabbitMQGroup = "shop-rabbitmq"
	// datastoresGroup reads postgres_exporter, redis_exporter and
	// node_exporter (TestDatastoreAlertsReadWhatTheExportersServe).
	datastoresGroup = "shop-datastores"
	// tracingGroup reads the scrape of Jaeger's own metrics (job jaeger).
	// No test here scrapes a Jaeger (the local stack exports spans to one
	// only when asked, and lists no Jaeger target): only promtool's tests
	// (monitoring/rules/tests) check its rule.
	tracingGroup = "shop-tracing"
)

// ownGroups are those groups, each with what its rules read: every signal of
// the group reads one of those metrics, and no other group's does.
var ownGroups = map[string]*regexp.Regexp{
	rabbitMQGroup:   regexp.MustCompile(`\brabbitmq_[a-z_]+|job="rabbitmq`),
	datastoresGroup: regexp.MustCompile(`\b(pg|redis|node)_[a-z_]+|job="(postgres|redis|node)"`),
	tracingGroup:    regexp.MustCompile(`job="jaeger"`),
}

// ruleChecks are every recording rule's expression and every alert's
// signals (alertSignals) in monitoring/rules/*.yml: those of the rule group
// group, or with group "" those of every group but ownGroups.
func ruleChecks(t *testing.T, group string) []check {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(runtimetest.Root(t), "monitoring", "rules", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule file: %v", err)
	}
	var out []check
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Record string `yaml:"record"`
					Alert  string `yaml:"alert"`
					Expr   string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			if _, own := ownGroups[g.Name]; g.Name != group && (group != "" || own) {
				continue
			}
			for _, r := range g.Rules {
				if r.Record != "" {
					out = append(out, check{what: "recording rule " + r.Record, query: r.Expr})
					continue
				}
				for i, sig := range alertSignals(r.Expr) {
					out = append(out, check{what: fmt.Sprintf("alert %s (signal %d)", r.Alert, i+1), query: sig})
				}
			}
		}
	}
	return out
}

// alertSignals are what an alert watches, without its thresholds: an alert
// is empty while it does not fire, so its expression cannot show that its
// metrics exist. The expression is split at its top-level and / or /
// unless (again inside a parenthesised term); each term loses its outer
// parentheses, absent(x) becomes x, and
// a top-level comparison keeps its left-hand side (every alert here
// compares a signal with a constant). Each signal must return series in a
// working shop; whether the threshold fires is promtool's test
// (monitoring/rules/tests).
func alertSignals(expr string) []string {
	var out []string
	for _, term := range splitTopLevel(expr, []string{"and", "or", "unless"}) {
		term = stripParens(strings.TrimSpace(term))
		if len(splitTopLevel(term, []string{"and", "or", "unless"})) > 1 {
			out = append(out, alertSignals(term)...) // (a and b) or c
			continue
		}
		if inner, ok := strings.CutPrefix(term, "absent("); ok && strings.HasSuffix(inner, ")") {
			term = strings.TrimSpace(strings.TrimSuffix(inner, ")"))
		}
		if lhs, ok := topLevelComparison(term); ok {
			term = stripParens(strings.TrimSpace(lhs))
		}
		out = append(out, term)
	}
	return out
}

// splitTopLevel splits expr at the binary operators words that stand
// outside every bracket and string.
func splitTopLevel(expr string, words []string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		}
		if depth != 0 || (i > 0 && isIdent(expr[i-1])) {
			continue
		}
		for _, w := range words {
			end := i + len(w)
			if strings.HasPrefix(expr[i:], w) && end < len(expr) && !isIdent(expr[end]) && expr[end] != ':' {
				out = append(out, expr[start:i])
				start = end
				i = end - 1
				break
			}
		}
	}
	return append(out, expr[start:])
}

// topLevelComparison returns the left-hand side of a comparison operator
// outside every bracket and string.
func topLevelComparison(expr string) (string, bool) {
	depth := 0
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		case depth == 0 && (c == '>' || c == '<'):
			return expr[:i], true
		case depth == 0 && (c == '=' || c == '!') && i+1 < len(expr) && expr[i+1] == '=':
			return expr[:i], true
		}
	}
	return "", false
}

// stripParens removes parentheses that enclose the whole expression.
func stripParens(s string) string {
	for strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") {
		depth := 0
		enclosed := true
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 && i != len(s)-1 {
					enclosed = false
				}
			}
			if !enclosed {
				break
			}
		}
		if !enclosed {
			return s
		}
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// TestOwnGroupsAreCheckedApart: the signals TestDashboardAndAlertsHaveData
// evaluates on the local stack read none of the metrics of ownGroups (the
// stack scrapes no broker, database or cache), and those of each of
// ownGroups, which its own test evaluates, all do: an alert on RabbitMQ's,
// PostgreSQL's or Redis's metrics in another group fails here, not after a
// whole stack.
func TestOwnGroupsAreCheckedApart(t *testing.T) {
	for _, c := range ruleChecks(t, "") {
		for group, reads := range ownGroups {
			if reads.MatchString(c.query) {
				t.Errorf("%s reads the metrics of group %s outside it: %s", c.what, group, c.query)
			}
		}
	}
	for group, reads := range ownGroups {
		own := ruleChecks(t, group)
		if len(own) == 0 {
			t.Errorf("no rule in group %s", group)
		}
		for _, c := range own {
			if !reads.MatchString(c.query) {
				t.Errorf("%s, in group %s, reads none of its metrics (%s): %s", c.what, group, reads, c.query)
			}
		}
	}
}

// TestAlertSignals pins how alert expressions become the signals the live
// metrics test evaluates.
func TestAlertSignals(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="functions"} == 0`, []string{`up{job="functions"}`}},
		{`absent(up{job="connectors", instance=~"outbox-relay:.*"} == 1)`, []string{`up{job="connectors", instance=~"outbox-relay:.*"}`}},
		{"sum by (function) (a{code=~\"5..\"})\n  / sum by (function) (a) > 0.05\nand sum by (function) (a) > 0.02",
			[]string{"sum by (function) (a{code=~\"5..\"})\n  / sum by (function) (a)", "sum by (function) (a)"}},
		{"(x:ratio_rate1h > (14.4 * 0.005) and x:ratio_rate5m > (14.4 * 0.005))\nor\n(x:ratio_rate6h > (6 * 0.005))",
			[]string{"x:ratio_rate1h", "x:ratio_rate5m", "x:ratio_rate6h"}},
		{`max by (database) (shop_outbox_oldest_pending_age_seconds) > 60`, []string{`max by (database) (shop_outbox_oldest_pending_age_seconds)`}},
		{`sum(rate(x{label="a or b"}[5m])) > 0`, []string{`sum(rate(x{label="a or b"}[5m]))`}},
		{"sum(increase(x{result=\"ok\"}[5m])) == 0\nor absent(sum(x{result=\"ok\"}))",
			[]string{`sum(increase(x{result="ok"}[5m]))`, `sum(x{result="ok"})`}},
	} {
		got := alertSignals(tc.expr)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("alertSignals(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// prometheusBinary finds Debian's prometheus: missing, the test fails
// (skipped with -short, as is the local runtime it scrapes).
func prometheusBinary(t *testing.T) string {
	t.Helper()
	return proctest.Binary(t, "Debian: apt-get install prometheus", "prometheus")
}

// prometheus is a Prometheus server the test started.
type prometheus struct {
	url    string
	client *http.Client
	out    *runtimetest.Output
}

// startPrometheus runs bin (runPrometheus) with a configuration that
// discovers the runtime's metrics endpoints every 2 seconds (with the
// gateway API's basic-auth user and password file) and loads
// monitoring/rules.
func startPrometheus(t *testing.T, bin, gatewayURL, user, passwordFile string) *prometheus {
	t.Helper()
	config := fmt.Sprintf(`global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
rule_files:
  - %q
scrape_configs:
  - job_name: shop-local
    honor_labels: true
    http_sd_configs:
      - url: %q
        refresh_interval: 2s
        basic_auth:
          username: %q
          password_file: %q
`, filepath.Join(runtimetest.Root(t), "monitoring", "rules", "*.yml"), gatewayURL+"/system/metrics-targets", user, passwordFile)
	return runPrometheus(t, bin, config)
}

// runPrometheus runs bin with config on a free loopback port and a
// temporary storage, and returns once it is ready; it is stopped when the
// test ends.
func runPrometheus(t *testing.T, bin, config string) *prometheus {
	t.Helper()
	return runPrometheusOn(t, bin, freeAddrs(t, 1)[0], config)
}

// runPrometheusOn is runPrometheus listening on addr.
func runPrometheusOn(t *testing.T, bin, addr, config string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{url: "http://" + addr, client: &http.Client{Timeout: 10 * time.Second}}
	var done <-chan struct{}
	p.out, done = startProcess(t, nil, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		select {
		case <-done:
			t.Fatal("prometheus exited (its output follows)")
		default:
		}
		if res, err := p.client.Get(p.url + "/-/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("prometheus not ready within 30s (its output follows)")
		}
	}
}

// series runs an instant query and returns how many series it answered.
func (p *prometheus) series(query string) (int, error) {
	res, err := p.client.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return 0, fmt.Errorf("%d %s", res.StatusCode, raw)
	}
	if out.Status != "success" {
		return 0, fmt.Errorf("%s", out.Error)
	}
	if out.Data.ResultType != "vector" && out.Data.ResultType != "matrix" {
		return 1, nil // a scalar or a string always has a value
	}
	return len(out.Data.Result), nil
}

// waitTargets waits until Prometheus scrapes want[job] healthy targets of
// each job.
func waitTargets(t *testing.T, p *prometheus, want map[string]int) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		res, err := p.client.Get(p.url + "/api/v1/targets?state=active")
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
					ScrapeURL string            `json:"scrapeUrl"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		err = json.NewDecoder(res.Body).Decode(&out)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		up := map[string]int{}
		var b strings.Builder
		for _, tg := range out.Data.ActiveTargets {
			if tg.Health == "up" {
				up[tg.Labels["job"]]++
			}
			fmt.Fprintf(&b, "  %s %s %v %s\n", tg.Health, tg.ScrapeURL, tg.Labels, tg.LastError)
		}
		last = b.String()
		ok := true
		for job, n := range want {
			if up[job] < n {
				ok = false
			}
		}
		if ok {
			return
		}
	}
	t.Fatalf("prometheus does not scrape %v healthy targets within 2m; targets:\n%s", want, last)
}
