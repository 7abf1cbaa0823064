package faaslocal

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/openfaas/faas-provider/types"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/stackfile"
)

func TestTelemetryEnv(t *testing.T) {
	host := []string{"PATH=/bin", "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://collector:4318/v1/traces",
		"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_SERVICE_NAME=faas-local", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=dev", "AWS_SECRET=x"}
	got := TelemetryEnv(host, "")
	want := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces",
		"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=dev"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("passed through (-want +got):\n%s", diff)
	}
	got = TelemetryEnv(host, "http://127.0.0.1:4318")
	want = map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
		"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=dev"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("with -otlp (-want +got):\n%s", diff)
	}
}

func TestProcessesGetTheTelemetryEnv(t *testing.T) {
	l := &launcher{binary: "/bin/shop-functions", known: map[string]bool{"get-me": true}, host: map[string]string{"PATH": "/bin"},
		telemetry: TelemetryEnv(nil, "http://127.0.0.1:4318"), overrides: map[string]string{}}
	envVars := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "SHOP_ENV": devEnv}
	fn, err := l.Process(types.FunctionDeployment{Service: "get-me", EnvVars: envVars}, "/secrets")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(fn.Env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318") {
		t.Errorf("function env %v does not point at the -otlp collector", fn.Env)
	}
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// Every process the runtime starts, function replica or connector, finds
// every function's direct address in FUNCTION_URLS; a function of the
// multi-call binary gets its own as SERVICE_ADDR, which no deployment or
// Config.Env overrides (it would join another function's replicas); without
// services (GatewayOnly) neither is set.
func TestProcessesGetTheDirectAddresses(t *testing.T) {
	svc := &services{ports: map[string]int{"get-product": 41002, "get-me": 41001}}
	urls := "FUNCTION_URLS=get-me=http://127.0.0.1:41001,get-product=http://127.0.0.1:41002"
	newLauncher := func(s *services) *launcher {
		return &launcher{root: "../..", binary: "/bin/shop-functions", known: map[string]bool{"get-me": true, "get-product": true},
			host: map[string]string{}, overrides: map[string]string{"SERVICE_ADDR": "127.0.0.1:1"}, allowExec: true, services: s}
	}
	picked := func(env []string) []string {
		return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
			return !strings.HasPrefix(kv, "FUNCTION_URLS=") && !strings.HasPrefix(kv, "SERVICE_ADDR=")
		})
	}
	for _, tc := range []struct {
		name     string
		services *services
		spec     types.FunctionDeployment
		want     []string
	}{
		{"function of the binary", svc, types.FunctionDeployment{Service: "get-me", EnvVars: map[string]string{"SERVICE_ADDR": "127.0.0.1:2", "SHOP_ENV": devEnv}},
			[]string{urls, "SERVICE_ADDR=127.0.0.1:41001"}},
		{"envProcess", svc, types.FunctionDeployment{Service: "echo", EnvProcess: "echofn", EnvVars: map[string]string{"SERVICE_ADDR": "127.0.0.1:41002"}},
			[]string{urls}},
		{"gateway only", nil, types.FunctionDeployment{Service: "get-me", EnvVars: map[string]string{"SHOP_ENV": devEnv}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newLauncher(tc.services).Process(tc.spec, "/secrets")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, picked(p.Env), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("direct-call environment (-want +got):\n%s", diff)
			}
		})
	}
	for _, tc := range []struct {
		name     string
		services *services
		want     string
	}{{"connector", svc, strings.TrimPrefix(urls, "FUNCTION_URLS=")}, {"connector, gateway only", nil, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			env := newLauncher(tc.services).connectorEnv("/secrets")
			if env["FUNCTION_URLS"] != tc.want {
				t.Errorf("connector's FUNCTION_URLS = %q, want %q", env["FUNCTION_URLS"], tc.want)
			}
		})
	}
}

// The functions on every order's path, and the relay and the RabbitMQ
// connector, run with the Go monitor thread kept out of its deep sleep
// (docs/performance.md, item 30); the functions that are idle between rare
// requests do not, since it costs an idle process a wake-up every 10 ms.
func TestTheOrderPathRunsWithSysmonAwake(t *testing.T) {
	orderPath := []string{"create-order", "get-product", "reserve-stock", "charge-payment",
		"update-product-stats", "notify-user", "index-product"}
	s, err := stackfile.Load("../../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, fn := range s.Functions {
		got, want := fn.Environment["GODEBUG"], ""
		if slices.Contains(orderPath, name) {
			want = orderPathGODEBUG
		}
		if got != want {
			t.Errorf("stack.yml %s: GODEBUG %q, want %q", name, got, want)
		}
	}
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"outbox-relay", "rabbitmq-connector"} {
		if got := compose.Services[name].Environment["GODEBUG"]; got != orderPathGODEBUG {
			t.Errorf("docker-compose.yml %s: GODEBUG %q, want %q", name, got, orderPathGODEBUG)
		}
	}
	l := &launcher{root: "../..", host: map[string]string{}, overrides: map[string]string{}}
	if env := l.connectorEnv("/secrets"); env["GODEBUG"] != orderPathGODEBUG {
		t.Errorf("the local runtime's connectors: GODEBUG %q, want %q", env["GODEBUG"], orderPathGODEBUG)
	}
}

// derivedEnv is the one list of the names Process derives: a function of
// the multi-call binary gets every one of them when its deployment sends
// none, and nothing else it was not sent (with nothing from the host); a
// name that is not derived comes out as sent whatever the deployment sends;
// and docs/local-runtime.md names every derived one where it describes what
// faas-cli describe lists.
func TestDerivedEnvIsWhatProcessSets(t *testing.T) {
	l := &launcher{binary: "/bin/shop-functions", known: map[string]bool{"get-me": true}, host: map[string]string{},
		overrides: map[string]string{}, allowExec: true, services: &services{ports: map[string]int{"get-me": 41001}}}
	process := func(envVars map[string]string) map[string]string {
		t.Helper()
		p, err := l.Process(types.FunctionDeployment{Service: "get-me", EnvVars: envVars}, "/secrets")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, kv := range p.Env {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		return got
	}
	got := process(map[string]string{"SHOP_ENV": devEnv})
	for k := range got {
		if k != "SHOP_ENV" && !slices.Contains(l.Derived(), k) {
			t.Errorf("Process sets %s, which derivedEnv does not list", k)
		}
	}
	for _, k := range l.Derived() {
		if _, ok := got[k]; !ok {
			t.Errorf("derivedEnv lists %s, which Process does not set", k)
		}
	}
	sent := map[string]string{"SHOP_ENV": devEnv, "GREETING": "hello"}
	for _, k := range derivedEnv {
		sent[k] = "sent"
	}
	got = process(maps.Clone(sent))
	for _, k := range []string{"SHOP_ENV", "GREETING"} {
		if got[k] != sent[k] {
			t.Errorf("%s, not derived: the process has %q, want %q as sent", k, got[k], sent[k])
		}
	}
	doc, err := os.ReadFile("../../docs/local-runtime.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range derivedEnv {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/local-runtime.md does not name the derived %s", k)
		}
	}
}

// Without services (Config.GatewayOnly) no process gets FUNCTION_URLS, not
// even one its deployment sent: every call goes through the gateway. Until
// 2026-12-08 a deployment's FUNCTION_URLS reached the process.
func TestGatewayOnlyDropsASentFunctionURLs(t *testing.T) {
	l := &launcher{binary: "/bin/shop-functions", known: map[string]bool{"get-me": true}, host: map[string]string{},
		overrides: map[string]string{}}
	p, err := l.Process(types.FunctionDeployment{Service: "get-me",
		EnvVars: map[string]string{"SHOP_ENV": devEnv, "FUNCTION_URLS": "get-me=http://127.0.0.1:1"}}, "/secrets")
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(p.Env, func(kv string) bool { return strings.HasPrefix(kv, "FUNCTION_URLS=") }); i >= 0 {
		t.Errorf("gateway only, the process has %s", p.Env[i])
	}
}
