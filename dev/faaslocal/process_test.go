package faaslocal

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openfaas/faas-provider/types"
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
	envVars := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}
	fn, err := l.Process(types.FunctionDeployment{Service: "get-me", EnvVars: envVars}, "/secrets")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(fn.Env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318") {
		t.Errorf("function env %v does not point at the -otlp collector", fn.Env)
	}
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
